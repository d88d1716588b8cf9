//! How reports name an answer's status. The retry policy itself is the shared buyer model
//! ([`quota_shared::buyers`]), so the simulator's buyers retry exactly like these.

pub(crate) use quota_shared::buyers::TRANSPORT_ERROR;

/// Short name of a status for reports: the number, or `error` for a transport error.
pub(crate) fn status_label(status: u16) -> String {
    if status == TRANSPORT_ERROR {
        "error".to_string()
    } else {
        status.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(status_label(410), "410");
        assert_eq!(status_label(TRANSPORT_ERROR), "error");
    }
}
