//! Node errors as gRPC statuses, each with a message fit to show a user on one line.

use tonic::{Code, Status};

use crate::exchange::ExchangeError;
use crate::runtime::NodeError;

/// The status a failed node command is answered with.
///
/// ```
/// use valex_node::control::status_of;
/// use valex_node::runtime::NodeError;
///
/// assert_eq!(status_of(NodeError::UnknownValue).code(), tonic::Code::NotFound);
/// assert_eq!(status_of(NodeError::Stopped).code(), tonic::Code::Unavailable);
/// ```
pub fn status_of(error: NodeError) -> Status {
    let code = match &error {
        NodeError::Stopped | NodeError::Dial(_) | NodeError::Net(_) => Code::Unavailable,
        NodeError::Store(_) | NodeError::Internal(_) => Code::Internal,
        NodeError::Exchange(inner) => exchange_code(inner),
        NodeError::NoArbiter => {
            return Status::failed_precondition("no known arbiter is acceptable: name one with --arbiter, or wait for discovery");
        }
        NodeError::UnknownValue | NodeError::UnknownSession(_) => Code::NotFound,
        NodeError::Value(_) => Code::InvalidArgument,
    };
    Status::new(code, error.to_string())
}

fn exchange_code(error: &ExchangeError) -> Code {
    match error {
        ExchangeError::Value(_) | ExchangeError::SelfExchange | ExchangeError::ExpiryOutOfPolicy { .. } => Code::InvalidArgument,
        ExchangeError::UnknownSession(_) => Code::NotFound,
        ExchangeError::TooManySessions { .. } => Code::ResourceExhausted,
        _ => Code::FailedPrecondition,
    }
}

/// The status for a malformed argument.
pub fn invalid_argument(error: impl std::fmt::Display) -> Status {
    Status::invalid_argument(error.to_string())
}
