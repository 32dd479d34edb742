//! The console provider: texts are printed and recorded as sent, so smsflow runs with no
//! provider account.

use std::io::Write as _;

use futures_util::future::BoxFuture;

use super::{Cleared, Provider, Receipt, SendError};

/// Prints each text to standard output as one line.
#[derive(Debug, Default)]
pub struct ConsoleProvider;

impl Provider for ConsoleProvider {
    fn name(&self) -> &'static str {
        "console"
    }

    fn send<'a>(&'a self, message: &'a Cleared) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            let line = format!(
                "[console] {} -> {}: {}\n",
                message.from,
                message.to,
                message.body.replace('\n', "\\n")
            );
            std::io::stdout()
                .lock()
                .write_all(line.as_bytes())
                .map_err(|error| SendError::Retryable(error.to_string()))?;
            Ok(Receipt {
                provider_id: format!("console-{}", message.id),
            })
        })
    }
}
