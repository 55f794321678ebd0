//! Protocol test vectors (protocol.md §2): fixed seeds → keys → canonical bytes → digests and
//! signatures, all in lower-case hex, so another implementation can check itself byte for byte.
//!
//! The document is rebuilt deterministically and compared byte for byte with the checked-in
//! `proto/vectors/v1.json`. To (re)write that file instead:
//!
//! ```text
//! VALEX_WRITE_VECTORS=1 cargo test -p valex-proto --test vectors
//! ```
//!
//! Besides the comparison, the test checks what the vectors mean without going through the
//! crate's encoders: the canonical bytes are rebuilt by a separate, minimal encoder, every
//! digest is recomputed with `sha2`, every PeerId is rebuilt from the seed's ed25519 public key,
//! every signature is recomputed with `ed25519-dalek` and verified against the right PeerId, and
//! a flipped bit anywhere in a signature (or in its message, or a wrong signer) makes it fail.

use std::path::PathBuf;
use std::str::FromStr;

use serde_json::{Map, Value as Json, json};
use sha2::{Digest as _, Sha256};
use valex_proto::canonical;
use valex_proto::crypto::{self, Keypair};
use valex_proto::message::{ArbiterAnnouncement, Outcome, Terms};
use valex_proto::value::Value;
use valex_proto::{Digest, PeerId, Signature};

const EXPIRES_AT_MS: u64 = 1_767_225_600_000;
const ANNOUNCED_AT_MS: u64 = 1_767_225_600_000;
const ANNOUNCED_ADDR: &str = "/ip4/127.0.0.1/tcp/4001";
const ANNOUNCED_NAME: &str = "vector-arbiter";
const ANNOUNCED_VERSION: &str = "1";

/// Where the checked-in vectors live.
fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors").join("v1.json")
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn seed(label: &str) -> [u8; 32] {
    Digest::of(format!("valex/vectors/v1/{label}").as_bytes()).0
}

fn serial(n: u32) -> [u8; 16] {
    let full = seed(&format!("serial/{n}"));
    let mut serial = [0u8; 16];
    serial.copy_from_slice(&full[..16]);
    serial
}

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Generation: everything through valex-proto's own API.
// ---------------------------------------------------------------------------------------------

fn key_entry(label: &str, role: &str, key: &Keypair) -> Json {
    let peer = key.peer_id();
    json!({
        "role": role,
        "seed_label": format!("valex/vectors/v1/key/{label}"),
        "seed": h(key.seed()),
        "peer_id_bytes": h(peer.to_bytes()),
        "peer_id_base58": peer.to_base58(),
    })
}

fn value_entry(value: &Value) -> Json {
    json!({
        "issuer": h(value.issuer().to_bytes()),
        "kind": value.kind(),
        "amount": value.amount(),
        "payload": h(value.payload()),
        "serial": h(value.serial()),
        "issue_bytes": h(canonical::issue_bytes(&value.issuer(), value.kind(), value.amount(), value.payload(), &value.serial())),
        "issuer_sig": h(value.issuer_sig().0),
        "id": h(value.id().0),
    })
}

fn signed_entry(signer: &str, bytes: &[u8], sig: &Signature) -> Json {
    json!({ "signer": signer, "bytes": h(bytes), "sig": h(sig.0) })
}

/// Builds the whole document.
fn generate() -> Json {
    let a = Keypair::from_seed(seed("key/A"));
    let b = Keypair::from_seed(seed("key/B"));
    let t = Keypair::from_seed(seed("key/T"));
    let i = Keypair::from_seed(seed("key/I"));

    #[allow(clippy::unwrap_used)]
    let v1 = Value::issue(&i, "ticket", 1, b"seat 12A".to_vec(), serial(1)).unwrap();
    #[allow(clippy::unwrap_used)]
    let v2 = Value::issue(&i, "voucher", 500, Vec::new(), serial(2)).unwrap();

    let r1 = seed("r1");
    let r2 = seed("r2");
    let s1_preimage = canonical::s1_preimage(&r1);
    let s2_preimage = canonical::s2_preimage(&r2);
    let s1 = Digest::of(&s1_preimage);
    let s2 = Digest::of(&s2_preimage);

    let terms = Terms {
        s1,
        initiator: a.peer_id(),
        responder: b.peer_id(),
        arbiter: t.peer_id(),
        v1_id: v1.id(),
        v2_id: v2.id(),
        expires_at_ms: EXPIRES_AT_MS,
    };
    let terms_bytes = canonical::terms_bytes(&terms);
    let hh = terms.h();

    let agree = canonical::agree_bytes(&hh, &s2);
    let confirm = canonical::confirm_bytes(&hh, &s2);
    let cancel = canonical::cancel_bytes(&hh, &s2);
    let decided_cancelled = canonical::decision_bytes(&hh, &s2, Outcome::Cancelled);
    let decided_completed = canonical::decision_bytes(&hh, &s2, Outcome::Completed);

    let ann = ArbiterAnnouncement::sign(
        &t,
        vec![ANNOUNCED_ADDR.to_owned()],
        ANNOUNCED_NAME.to_owned(),
        ANNOUNCED_VERSION.to_owned(),
        ANNOUNCED_AT_MS,
    );
    let ann_bytes = canonical::announce_bytes(&ann.peer, &ann.addrs, &ann.name, &ann.version, ann.issued_at_ms);

    json!({
        "format": "valex protocol test vectors v1: hex is lower-case; see README.md",
        "keys": {
            "A": key_entry("A", "initiator", &a),
            "B": key_entry("B", "responder", &b),
            "T": key_entry("T", "arbiter", &t),
            "I": key_entry("I", "issuer", &i),
        },
        "values": {
            "V1": value_entry(&v1),
            "V2": value_entry(&v2),
        },
        "secrets": {
            "r1": h(r1),
            "s1_preimage": h(&s1_preimage),
            "s1": h(s1.0),
            "r2": h(r2),
            "s2_preimage": h(&s2_preimage),
            "s2": h(s2.0),
        },
        "terms": {
            "s1": h(terms.s1.0),
            "initiator": h(terms.initiator.to_bytes()),
            "responder": h(terms.responder.to_bytes()),
            "arbiter": h(terms.arbiter.to_bytes()),
            "v1_id": h(terms.v1_id.0),
            "v2_id": h(terms.v2_id.0),
            "expires_at_ms": terms.expires_at_ms,
            "bytes": h(&terms_bytes),
            "h": h(hh.0),
        },
        "agree": signed_entry("B", &agree, &b.sign(&agree)),
        "confirm": signed_entry("A", &confirm, &a.sign(&confirm)),
        "cancel": signed_entry("B", &cancel, &b.sign(&cancel)),
        "decision": {
            "CANCELLED": signed_entry("T", &decided_cancelled, &t.sign(&decided_cancelled)),
            "COMPLETED": signed_entry("T", &decided_completed, &t.sign(&decided_completed)),
        },
        "announcement": {
            "peer": h(ann.peer.to_bytes()),
            "addrs": ann.addrs,
            "name": ann.name,
            "version": ann.version,
            "issued_at_ms": ann.issued_at_ms,
            "signer": "T",
            "bytes": h(&ann_bytes),
            "sig": h(ann.sig.0),
        },
    })
}

/// The same document with every object's keys in sorted order, however serde_json's `Map` is
/// configured (its `preserve_order` feature could be switched on by feature unification).
fn sorted(value: Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(String, Json)> = map.into_iter().collect();
            entries.sort_by(|x, y| x.0.cmp(&y.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, sorted(v));
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn render(doc: &Json) -> String {
    #[allow(clippy::expect_used)]
    let mut text = serde_json::to_string_pretty(&sorted(doc.clone())).expect("a JSON value always serialises");
    text.push('\n');
    text
}

// ---------------------------------------------------------------------------------------------
// Comparison with the checked-in file.
// ---------------------------------------------------------------------------------------------

/// The path of the first place where `expected` and `actual` differ, with both sides.
fn first_difference(path: &str, expected: &Json, actual: &Json) -> Option<String> {
    match (expected, actual) {
        (Json::Object(e), Json::Object(a)) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match (e.get(key), a.get(key)) {
                    (Some(ev), Some(av)) => {
                        if let Some(d) = first_difference(&sub, ev, av) {
                            return Some(d);
                        }
                    }
                    (Some(ev), None) => return Some(format!("`{sub}` is missing from the file (generated: {ev})")),
                    (None, Some(av)) => return Some(format!("`{sub}` is in the file but not generated (file: {av})")),
                    (None, None) => {}
                }
            }
            None
        }
        (Json::Array(e), Json::Array(a)) => {
            for (n, (ev, av)) in e.iter().zip(a).enumerate() {
                if let Some(d) = first_difference(&format!("{path}[{n}]"), ev, av) {
                    return Some(d);
                }
            }
            (e.len() != a.len()).then(|| format!("`{path}` has {} items in the file, {} generated", a.len(), e.len()))
        }
        _ => (expected != actual).then(|| format!("`{path}` differs: generated {expected}, file has {actual}")),
    }
}

fn describe_mismatch(generated: &str, on_disk: &str) -> String {
    let parsed_gen: Json = match serde_json::from_str(generated) {
        Ok(v) => v,
        Err(e) => return format!("the generated document does not parse back ({e})"),
    };
    let first = match serde_json::from_str::<Json>(on_disk) {
        Err(e) => format!("the file is not valid JSON: {e}"),
        Ok(file) => match first_difference("", &parsed_gen, &file) {
            Some(d) => format!("first differing key: {d}"),
            None => {
                let offset = generated.bytes().zip(on_disk.bytes()).take_while(|(x, y)| x == y).count();
                let line = generated[..offset].matches('\n').count() + 1;
                format!("same JSON content but different bytes (formatting or line endings), first at byte {offset}, line {line}")
            }
        },
    };
    format!(
        "{} does not match the generated vectors: {first}.\n\
         If the change to the canonical bytes is intended, regenerate with\n  \
         VALEX_WRITE_VECTORS=1 cargo test -p valex-proto --test vectors\n\
         and review the diff: other implementations depend on these bytes.",
        vectors_path().display()
    )
}

#[test]
fn vectors_match_the_checked_in_file() {
    let text = render(&generate());
    let path = vectors_path();
    if std::env::var("VALEX_WRITE_VECTORS").as_deref() == Ok("1") {
        #[allow(clippy::expect_used)]
        {
            std::fs::create_dir_all(path.parent().expect("the vectors file has a parent directory")).expect("create the vectors directory");
            std::fs::write(&path, &text).expect("write the vectors file");
        }
        eprintln!("wrote {}", path.display());
        return;
    }
    let on_disk = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "cannot read {} ({e}); generate it with\n  VALEX_WRITE_VECTORS=1 cargo test -p valex-proto --test vectors",
            path.display()
        ),
    };
    if on_disk != text.as_bytes() {
        panic!("{}", describe_mismatch(&text, &String::from_utf8_lossy(&on_disk)));
    }
}

#[test]
fn generation_is_deterministic_and_key_order_is_sorted() {
    let first = render(&generate());
    assert_eq!(first, render(&generate()));
    assert!(first.ends_with("}\n"));
    let top: Vec<&str> = first.lines().filter(|l| l.starts_with("  \"")).collect();
    let mut sorted_top = top.clone();
    sorted_top.sort();
    assert_eq!(top, sorted_top, "top-level keys are written in sorted order");
}

// ---------------------------------------------------------------------------------------------
// Independent checks of what the vectors mean.
// ---------------------------------------------------------------------------------------------

/// A second, deliberately minimal encoder of the §2 convention, sharing no code with
/// `valex_proto::canonical`.
struct Enc(Vec<u8>);

impl Enc {
    fn tag(tag: &str) -> Self {
        Self(tag.as_bytes().to_vec())
    }
    fn field(mut self, bytes: &[u8]) -> Self {
        let len = u32::try_from(bytes.len()).unwrap_or_else(|_| panic!("field too long"));
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }
    fn int(self, n: u64) -> Self {
        self.field(&n.to_be_bytes())
    }
}

/// Reads the hex string at `path` (dot-separated) in `doc`.
fn hex_at(doc: &Json, path: &str) -> Vec<u8> {
    let text = str_at(doc, path);
    assert_eq!(text, text.to_lowercase(), "{path} is not lower-case hex");
    hex::decode(text).unwrap_or_else(|e| panic!("{path} is not hex: {e}"))
}

fn node<'a>(doc: &'a Json, path: &str) -> &'a Json {
    path.split('.').fold(doc, |v, k| v.get(k).unwrap_or_else(|| panic!("vectors lack `{path}`")))
}

fn str_at<'a>(doc: &'a Json, path: &str) -> &'a str {
    node(doc, path).as_str().unwrap_or_else(|| panic!("`{path}` is not a string"))
}

fn u64_at(doc: &Json, path: &str) -> u64 {
    node(doc, path).as_u64().unwrap_or_else(|| panic!("`{path}` is not an unsigned integer"))
}

fn sig_at(doc: &Json, path: &str) -> Signature {
    Signature::from_slice(&hex_at(doc, path)).unwrap_or_else(|| panic!("`{path}` is not 64 bytes"))
}

fn peer_of(doc: &Json, party: &str) -> PeerId {
    PeerId::from_bytes(&hex_at(doc, &format!("keys.{party}.peer_id_bytes"))).unwrap_or_else(|e| panic!("keys.{party}: {e}"))
}

/// Checks one signature every way: it verifies against the named party's PeerId, it is the
/// deterministic ed25519 signature of the party's seed over `bytes`, and it fails with any bit
/// flipped, over any flipped message byte, and against every other party.
fn check_signature(doc: &Json, what: &str, signer: &str, bytes: &[u8], sig: &Signature) {
    let peer = peer_of(doc, signer);
    assert!(crypto::verify(&peer, bytes, sig).is_ok(), "{what}: signature by {signer} does not verify");

    let signing = ed25519_dalek::SigningKey::from_bytes(&seed_of(doc, signer));
    let expected = ed25519_dalek::Signer::sign(&signing, bytes).to_bytes();
    assert_eq!(sig.0, expected, "{what}: not the ed25519 signature of {signer}'s seed over the bytes");

    for byte in 0..64 {
        let mut bad = *sig;
        bad.0[byte] ^= 0x01;
        assert!(crypto::verify(&peer, bytes, &bad).is_err(), "{what}: flipping signature byte {byte} still verifies");
    }
    for byte in [0, bytes.len() / 2, bytes.len() - 1] {
        let mut tampered = bytes.to_vec();
        tampered[byte] ^= 0x01;
        assert!(crypto::verify(&peer, &tampered, sig).is_err(), "{what}: flipping message byte {byte} still verifies");
    }
    for other in ["A", "B", "T", "I"].into_iter().filter(|p| *p != signer) {
        assert!(crypto::verify(&peer_of(doc, other), bytes, sig).is_err(), "{what}: verifies against {other} too");
    }
}

fn seed_of(doc: &Json, party: &str) -> [u8; 32] {
    hex_at(doc, &format!("keys.{party}.seed")).try_into().unwrap_or_else(|_| panic!("keys.{party}.seed is not 32 bytes"))
}

fn check_keys(doc: &Json) {
    for party in ["A", "B", "T", "I"] {
        let label = format!("valex/vectors/v1/key/{party}");
        assert_eq!(str_at(doc, &format!("keys.{party}.seed_label")), label);
        let seed = seed_of(doc, party);
        assert_eq!(seed, sha256(label.as_bytes()), "keys.{party}.seed is not SHA-256 of its label");

        // An ed25519 PeerId is the identity multihash (0x00, length 0x24) of the protobuf
        // PublicKey { Type = Ed25519 (field 1 = 1), Data (field 2, 32 bytes) }.
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let mut expected = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
        expected.extend_from_slice(&public);
        let bytes = hex_at(doc, &format!("keys.{party}.peer_id_bytes"));
        assert_eq!(bytes, expected, "keys.{party}.peer_id_bytes is not the identity multihash of the seed's public key");

        let base58 = PeerId::from_str(str_at(doc, &format!("keys.{party}.peer_id_base58")))
            .unwrap_or_else(|e| panic!("keys.{party}.peer_id_base58: {e}"));
        assert_eq!(base58.to_bytes(), bytes, "keys.{party}: base58 and binary PeerIds differ");
        assert!(crypto::is_signing_identity(&base58));
    }
}

fn check_value(doc: &Json, name: &str, kind: &str, amount: u64, payload: &[u8], serial_label: &str) {
    let p = format!("values.{name}");
    let issuer = hex_at(doc, &format!("{p}.issuer"));
    assert_eq!(issuer, hex_at(doc, "keys.I.peer_id_bytes"), "{p}: issuer is not I");
    assert_eq!(str_at(doc, &format!("{p}.kind")), kind);
    assert_eq!(u64_at(doc, &format!("{p}.amount")), amount);
    assert_eq!(hex_at(doc, &format!("{p}.payload")), payload);
    let serial = hex_at(doc, &format!("{p}.serial"));
    assert_eq!(serial, sha256(serial_label.as_bytes())[..16], "{p}.serial is not the first 16 bytes of SHA-256({serial_label})");

    let expected = Enc::tag("valex/issue/v1").field(&issuer).field(kind.as_bytes()).int(amount).field(payload).field(&serial).0;
    let bytes = hex_at(doc, &format!("{p}.issue_bytes"));
    assert_eq!(bytes, expected, "{p}.issue_bytes");
    assert_eq!(hex_at(doc, &format!("{p}.id")), sha256(&bytes), "{p}.id is not SHA-256 of the issue bytes");
    check_signature(doc, &format!("{p}.issuer_sig"), "I", &bytes, &sig_at(doc, &format!("{p}.issuer_sig")));
}

#[test]
fn vectors_mean_what_they_say() {
    let doc = generate();
    check_keys(&doc);
    check_value(&doc, "V1", "ticket", 1, b"seat 12A", "valex/vectors/v1/serial/1");
    check_value(&doc, "V2", "voucher", 500, b"", "valex/vectors/v1/serial/2");

    // Secrets: r = SHA-256(label), s = SHA-256(tag ‖ len ‖ r).
    let mut s = Vec::new();
    for (n, tag) in [(1, "valex/s1"), (2, "valex/s2")] {
        let r = hex_at(&doc, &format!("secrets.r{n}"));
        assert_eq!(r, sha256(format!("valex/vectors/v1/r{n}").as_bytes()), "secrets.r{n}");
        let preimage = hex_at(&doc, &format!("secrets.s{n}_preimage"));
        assert_eq!(preimage, Enc::tag(tag).field(&r).0, "secrets.s{n}_preimage");
        let digest = hex_at(&doc, &format!("secrets.s{n}"));
        assert_eq!(digest, sha256(&preimage), "secrets.s{n} is not SHA-256 of its preimage");
        s.push(digest);
    }
    let (s1, s2) = (&s[0], &s[1]);

    // Terms and h.
    assert_eq!(&hex_at(&doc, "terms.s1"), s1);
    for (field, party) in [("initiator", "A"), ("responder", "B"), ("arbiter", "T")] {
        assert_eq!(hex_at(&doc, &format!("terms.{field}")), hex_at(&doc, &format!("keys.{party}.peer_id_bytes")), "terms.{field}");
    }
    assert_eq!(hex_at(&doc, "terms.v1_id"), hex_at(&doc, "values.V1.id"));
    assert_eq!(hex_at(&doc, "terms.v2_id"), hex_at(&doc, "values.V2.id"));
    assert_eq!(u64_at(&doc, "terms.expires_at_ms"), EXPIRES_AT_MS);
    let terms_bytes = Enc::tag("valex/terms/v1")
        .field(s1)
        .field(&hex_at(&doc, "keys.A.peer_id_bytes"))
        .field(&hex_at(&doc, "keys.B.peer_id_bytes"))
        .field(&hex_at(&doc, "keys.T.peer_id_bytes"))
        .field(&hex_at(&doc, "values.V1.id"))
        .field(&hex_at(&doc, "values.V2.id"))
        .int(EXPIRES_AT_MS)
        .0;
    assert_eq!(hex_at(&doc, "terms.bytes"), terms_bytes, "terms.bytes");
    let hh = hex_at(&doc, "terms.h");
    assert_eq!(hh, sha256(&terms_bytes), "terms.h is not SHA-256 of the terms bytes");

    // Sa, Se, Sab and both decisions.
    let signed = [
        ("agree", "B", Enc::tag("valex/agree/v1").field(&hh).field(s2).0),
        ("confirm", "A", Enc::tag("valex/confirm/v1").field(&hh).field(s2).0),
        ("cancel", "B", Enc::tag("valex/cancel/v1").field(&hh).field(s2).0),
        ("decision.CANCELLED", "T", Enc::tag("valex/decision/v1").field(&hh).field(s2).field(b"CANCELLED").0),
        ("decision.COMPLETED", "T", Enc::tag("valex/decision/v1").field(&hh).field(s2).field(b"COMPLETED").0),
    ];
    for (path, signer, expected) in signed {
        assert_eq!(str_at(&doc, &format!("{path}.signer")), signer, "{path}.signer");
        let bytes = hex_at(&doc, &format!("{path}.bytes"));
        assert_eq!(bytes, expected, "{path}.bytes");
        check_signature(&doc, path, signer, &bytes, &sig_at(&doc, &format!("{path}.sig")));
    }
    // A decision's signature does not carry over to the other outcome.
    let cancelled = sig_at(&doc, "decision.CANCELLED.sig");
    assert!(crypto::verify(&peer_of(&doc, "T"), &hex_at(&doc, "decision.COMPLETED.bytes"), &cancelled).is_err());

    // The arbiter's announcement.
    assert_eq!(hex_at(&doc, "announcement.peer"), hex_at(&doc, "keys.T.peer_id_bytes"));
    assert_eq!(node(&doc, "announcement.addrs"), &json!([ANNOUNCED_ADDR]));
    assert_eq!(str_at(&doc, "announcement.name"), ANNOUNCED_NAME);
    assert_eq!(str_at(&doc, "announcement.version"), ANNOUNCED_VERSION);
    assert_eq!(u64_at(&doc, "announcement.issued_at_ms"), ANNOUNCED_AT_MS);
    assert_eq!(str_at(&doc, "announcement.signer"), "T");
    let ann_bytes = Enc::tag("valex/announce/v1")
        .field(&hex_at(&doc, "keys.T.peer_id_bytes"))
        .int(1)
        .field(ANNOUNCED_ADDR.as_bytes())
        .field(ANNOUNCED_NAME.as_bytes())
        .field(ANNOUNCED_VERSION.as_bytes())
        .int(ANNOUNCED_AT_MS)
        .0;
    assert_eq!(hex_at(&doc, "announcement.bytes"), ann_bytes, "announcement.bytes");
    check_signature(&doc, "announcement", "T", &ann_bytes, &sig_at(&doc, "announcement.sig"));
}

#[test]
fn a_changed_field_is_reported_by_its_key() {
    let doc = generate();
    let mut changed = doc.clone();
    changed["terms"]["h"] = json!("00");
    let generated = render(&doc);
    let message = describe_mismatch(&generated, &render(&changed));
    assert!(message.contains("`terms.h` differs"), "{message}");
    let message = describe_mismatch(&generated, &generated.replace('\n', "\r\n"));
    assert!(message.contains("different bytes"), "{message}");
    let message = describe_mismatch(&generated, "not json");
    assert!(message.contains("not valid JSON"), "{message}");
}
