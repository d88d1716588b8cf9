//! The two etcd answers the coordinator treats as normal rather than as failures, recognised by
//! their gRPC status code (not by the text of the error), so a reworded message or a
//! differently formatted error cannot turn a routine answer into an outage or vice versa.

use etcd_client::Error;
use tonic::Code;

/// The election has no leader yet (`Leader` RPC). etcd's election service returns the plain Go
/// error `concurrency.ErrElectionNoLeader` ("election: no leader"), which gRPC carries as
/// `Unknown`; the code alone cannot tell it from other unknown errors, so this is the one place
/// where the message is checked too.
pub(crate) fn is_no_leader(e: &Error) -> bool {
    matches!(e, Error::GRpcStatus(s) if s.code() == Code::Unknown && s.message().contains("no leader"))
}

/// The request timed out: the server's deadline (`DeadlineExceeded`) or the client's own request
/// timeout (tonic answers `Cancelled` with "Timeout expired"). A campaign blocks until this
/// instance wins, so it times out routinely while another instance leads.
pub(crate) fn is_request_timeout(e: &Error) -> bool {
    matches!(e, Error::GRpcStatus(s) if matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled))
}
