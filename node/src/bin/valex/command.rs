//! Running one command: `init` and `run` work on the data directory; every other command calls
//! the running daemon's control API (found through `<data-dir>/control.addr`).

use anyhow::{Context, Result, anyhow, bail};
use valex_node::control::pb::{self, start_exchange_request};

use crate::args::{Cli, Command, ExchangeArgs, ValueCommand};
use crate::client::status_error;
use crate::output::print_json;
use crate::{client, daemon, identity, output};

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let data_dir = identity::data_dir(cli.data_dir)?;
    let json = cli.json;
    match cli.command {
        Command::Init { force } => {
            let key = identity::init(&data_dir, force)?;
            let key_file = data_dir.join(identity::KEY_FILE);
            if json {
                print_json(&serde_json::json!({
                    "peer_id": key.peer_id().to_string(),
                    "data_dir": data_dir.display().to_string(),
                    "key_file": key_file.display().to_string(),
                }))?;
            } else {
                println!("{}", key.peer_id());
                eprintln!("identity key written to {}", key_file.display());
            }
            Ok(())
        }
        Command::Run(args) => daemon::run(&data_dir, cli.control, args).await,
        command => {
            let mut client = client::connect(&data_dir, cli.control).await?;
            call(&mut client, command, json).await
        }
    }
}

/// A command answered by the daemon.
async fn call(client: &mut client::Client, command: Command, json: bool) -> Result<()> {
    match command {
        Command::Init { .. } | Command::Run(_) => bail!("this command does not talk to the daemon"),
        Command::Info => {
            let info = client.node_info(pb::NodeInfoRequest {}).await.map_err(status_error)?.into_inner();
            if json {
                return print_json(&info);
            }
            let mut pairs = vec![("peer id", info.peer_id), ("version", info.version)];
            pairs.extend(info.listen_addrs.into_iter().map(|a| ("listening", a)));
            print!("{}", output::fields(&pairs));
        }
        Command::Value(ValueCommand::Issue { kind, amount, payload_hex }) => {
            let payload = match payload_hex {
                Some(text) => hex::decode(text.trim()).map_err(|_| anyhow!("--payload-hex {text:?} is not hex"))?,
                None => Vec::new(),
            };
            let info = client.issue_value(pb::IssueValueRequest { kind, amount, payload }).await.map_err(status_error)?.into_inner();
            if json {
                return print_json(&info);
            }
            print!("{}", output::value_info(&info));
        }
        Command::Value(ValueCommand::List) => {
            let list = client.list_values(pb::ListValuesRequest {}).await.map_err(status_error)?.into_inner();
            if json {
                return print_json(&list);
            }
            print!("{}", output::values(&list.values));
        }
        Command::Value(ValueCommand::Show { id }) => {
            let info = client.show_value(pb::ShowValueRequest { id }).await.map_err(status_error)?.into_inner();
            if json {
                return print_json(&info);
            }
            print!("{}", output::value_info(&info));
        }
        Command::Exchange(args) => {
            let request = exchange_request(args)?;
            let result = client.exchange(request).await.map_err(status_error)?.into_inner();
            if json {
                print_json(&result)?;
            } else {
                print!("{}", output::exchange_result(&result));
            }
            return exchange_outcome(&result);
        }
        Command::Sessions => {
            let list = client.sessions(pb::SessionsRequest {}).await.map_err(status_error)?.into_inner();
            if json {
                return print_json(&list);
            }
            print!("{}", output::sessions(&list.sessions));
        }
        Command::Events { count } => {
            let mut events = client.events(pb::EventsRequest {}).await.map_err(status_error)?.into_inner();
            // The daemon has subscribed once it answers: say so on stderr (stdout is the events).
            eprintln!("following the node's events (Ctrl-C stops)");
            let mut seen = 0u64;
            while count.is_none_or(|n| seen < n) {
                let Some(event) = events.message().await.map_err(status_error)? else { break };
                if json {
                    // One JSON object per line, so scripts can read the stream as it comes.
                    println!("{}", serde_json::to_string(&event)?);
                } else {
                    println!("{}", output::node_event(&event));
                }
                seen += 1;
            }
        }
        Command::Arbiters => {
            let list = client.arbiters(pb::ArbitersRequest {}).await.map_err(status_error)?.into_inner();
            if json {
                return print_json(&list);
            }
            print!("{}", output::arbiters(&list.arbiters));
        }
        Command::Peers => {
            let list = client.peers(pb::PeersRequest {}).await.map_err(status_error)?.into_inner();
            if json {
                return print_json(&list);
            }
            print!("{}", output::peers(&list.peers));
        }
        Command::Dial { addr } => {
            client.dial(pb::DialRequest { addr: addr.to_string() }).await.map_err(status_error)?;
            if json {
                return print_json(&serde_json::json!({ "dialed": addr.to_string() }));
            }
            println!("connected to {addr}");
        }
    }
    Ok(())
}

/// An exchange that did not swap is a failure of the command (its result is printed first).
fn exchange_outcome(result: &pb::ExchangeResult) -> Result<()> {
    let reason = if result.aborted_reason.is_empty() { String::new() } else { format!(" ({})", result.aborted_reason) };
    match result.outcome.as_str() {
        "done" => Ok(()),
        "cancelled" => bail!("exchange {} was cancelled by the arbiter: both sides keep their values", result.session),
        "aborted" => bail!("exchange {} was aborted{reason}: both sides keep their values", result.session),
        other => bail!("exchange {} has not ended (outcome {other})", result.session),
    }
}

/// `--want ID|KIND:AMOUNT` (and the other flags) as the control API's exchange command.
fn exchange_request(args: ExchangeArgs) -> Result<pb::StartExchangeRequest> {
    let want = match args.want.rsplit_once(':') {
        None => start_exchange_request::Want::WantValue(args.want),
        Some((kind, amount)) => {
            let amount: u64 =
                amount.trim().parse().with_context(|| format!("--want {:?}: the amount after ':' is not a number", args.want))?;
            if kind.is_empty() {
                bail!("--want {:?}: the kind before ':' is empty", args.want);
            }
            start_exchange_request::Want::WantKind(pb::WantKind {
                kind: kind.to_owned(),
                amount,
                issuer: args.want_issuer.clone().unwrap_or_default(),
            })
        }
    };
    if args.want_issuer.is_some() && matches!(want, start_exchange_request::Want::WantValue(_)) {
        bail!("--want-issuer goes with --want KIND:AMOUNT, not with a value id");
    }
    Ok(pb::StartExchangeRequest {
        peer: args.peer,
        give: args.give,
        want: Some(want),
        arbiter: args.arbiter.unwrap_or_default(),
        ttl_ms: args.ttl_ms,
    })
}
