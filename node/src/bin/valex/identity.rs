//! The data directory and the node's identity key file.
//!
//! Layout of `<data-dir>`: `identity.key` (the ed25519 secret seed as 64 hex characters, mode 0600),
//! `db/` (the node's store) and, while a daemon runs, `control.addr` (its control address).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use valex_proto::crypto::Keypair;

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "identity.key";
/// The file the daemon writes its control address to.
pub const CONTROL_ADDR_FILE: &str = "control.addr";

/// The data directory: `--data-dir`, else `$VALEX_DATA_DIR`, else `~/.valex`.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    if let Some(dir) = std::env::var_os("VALEX_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("no data directory: pass --data-dir or set VALEX_DATA_DIR (HOME is not set)"))?;
    Ok(PathBuf::from(home).join(".valex"))
}

/// Creates the data directory (mode 0700) and a fresh identity key (mode 0600).
///
/// Refuses to replace an existing key unless `force`; with `force` the new key replaces the old
/// one atomically (written beside it, then renamed).
pub fn init(dir: &Path, force: bool) -> Result<Keypair> {
    create_private_dir(dir)?;
    let path = dir.join(KEY_FILE);
    if path.exists() && !force {
        bail!("an identity key already exists at {} (use --force to replace it)", path.display());
    }
    let key = Keypair::generate();
    let text = format!("{}\n", hex::encode(key.seed()));
    let tmp = dir.join(format!("{KEY_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    write_private_file(&tmp, text.as_bytes()).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

/// Loads the identity key of the data directory.
pub fn load(dir: &Path) -> Result<Keypair> {
    let path = dir.join(KEY_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            bail!("no identity key at {}: run `valex init` first", path.display())
        }
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| anyhow!("{} is not a valex identity key (expected 64 hex characters)", path.display()))?;
    Ok(Keypair::from_seed(seed))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// Writes a new file readable by its owner only.
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes the control address file (replacing it atomically).
pub fn write_control_addr(dir: &Path, addr: std::net::SocketAddr) -> Result<()> {
    let path = dir.join(CONTROL_ADDR_FILE);
    let tmp = dir.join(format!("{CONTROL_ADDR_FILE}.tmp"));
    fs::write(&tmp, format!("{addr}\n")).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads the control address the daemon of `dir` wrote, or `None` when no daemon has written one.
pub fn read_control_addr(dir: &Path) -> Result<Option<std::net::SocketAddr>> {
    let path = dir.join(CONTROL_ADDR_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| anyhow!("{} does not hold a socket address; remove it and restart `valex run`", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Removes the control address file (when the daemon stops).
pub fn remove_control_addr(dir: &Path) {
    let _ = fs::remove_file(dir.join(CONTROL_ADDR_FILE));
}
