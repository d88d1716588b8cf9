//! quotactl's exit statuses: one per outcome a script would handle differently, so that a
//! cron job can tell "the books are broken" (page someone) from "a region did not answer"
//! (look again soon) from "the coordinator is unreachable" (retry) from "my command was wrong".

use std::process::ExitCode;

use quotactl::ClientError;

/// Every way quotactl can end. The numbers are part of its interface (README, `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Done; for `audit`, the books balance.
    Success = 0,
    /// The audit ran and found a violation: the books do not balance.
    AuditFailed = 1,
    /// The command line or the configuration is wrong (clap's own usage errors are 2 too);
    /// nothing was sent.
    Usage = 2,
    /// The audit could not read every region (or `--watch` completed no audit): it proves
    /// nothing either way.
    AuditInconclusive = 3,
    /// The coordinator answered and refused (4xx: unknown product, invalid change, unknown
    /// token, too small a scope, a reused idempotency key); nothing changed.
    Refused = 4,
    /// No usable answer: no instance reachable, timed out, a 5xx, an answer that is not the
    /// API's, or a change whose answer was lost (it may have been applied: rerun it with the
    /// printed idempotency key).
    Unavailable = 5,
}

impl Exit {
    /// The status of a request that failed with `e`.
    pub(crate) fn of(e: &ClientError) -> Exit {
        match e {
            ClientError::Api { status, .. } if *status < 500 => Exit::Refused,
            ClientError::Forbidden { .. } => Exit::Refused,
            ClientError::Api { .. }
            | ClientError::Unreachable { .. }
            | ClientError::MaybeApplied { .. }
            | ClientError::Decode(_) => Exit::Unavailable,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_missing_answers_are_told_apart() {
        let api = |status| ClientError::Api {
            status,
            code: "x".into(),
            message: "m".into(),
            answered_by: "http://a".into(),
            tried: Vec::new(),
        };
        assert_eq!(Exit::of(&api(404)), Exit::Refused);
        assert_eq!(Exit::of(&api(422)), Exit::Refused);
        assert_eq!(Exit::of(&api(401)), Exit::Refused);
        assert_eq!(Exit::of(&api(503)), Exit::Unavailable);
        assert_eq!(
            Exit::of(&ClientError::Unreachable { tried: Vec::new() }),
            Exit::Unavailable
        );
        assert_eq!(
            Exit::of(&ClientError::Forbidden {
                needed: "operator".into(),
                message: "m".into()
            }),
            Exit::Refused
        );
        let codes = [
            Exit::Success,
            Exit::AuditFailed,
            Exit::Usage,
            Exit::AuditInconclusive,
            Exit::Refused,
            Exit::Unavailable,
        ]
        .map(|e| e as u8);
        assert_eq!(codes, [0, 1, 2, 3, 4, 5], "distinct, and stable");
    }
}
