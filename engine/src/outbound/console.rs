//! The console provider: texts are printed and recorded as sent, so smsflow runs with no
//! provider account.

use std::io::Write as _;

use super::{BoxFuture, OutboundMessage, Provider, Receipt};

/// Prints each text to standard output as one line.
#[derive(Debug, Default)]
pub struct ConsoleProvider;

impl Provider for ConsoleProvider {
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, anyhow::Result<Receipt>> {
        Box::pin(async move {
            let line = format!(
                "[console] {} -> {}: {}\n",
                message.from,
                message.to,
                message.body.replace('\n', "\\n")
            );
            std::io::stdout().lock().write_all(line.as_bytes())?;
            Ok(Receipt {
                provider_id: format!("console-{}", message.id),
            })
        })
    }
}
