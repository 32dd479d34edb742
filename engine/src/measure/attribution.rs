//! Conversions, attributed last-touch: to the text the contact last clicked within the click
//! window, else the one last delivered within the delivery window, else to nothing.

use super::{Converted, MeasureError, Measurement, NewConversion};
use crate::store::Batch;
use crate::store::funnel::{Attribution, Conversion, FunnelEvent, FunnelKind};

/// The largest value a conversion may carry: more is a typo (cents for dollars) or abuse.
const MAX_VALUE: f64 = 1e9;

/// How far ahead of the clock `occurred_at` may be (clock skew between systems).
const FUTURE_SKEW_MS: i64 = 5 * 60_000;

impl Measurement {
    /// Records a conversion, attributed; the same idempotency key again answers the first
    /// one (and writes nothing).
    ///
    /// # Errors
    ///
    /// [`MeasureError::Invalid`] for a bad value, currency, key or time,
    /// [`MeasureError::Unknown`] for a number that is no contact, or a store failure.
    pub async fn convert(&self, new: NewConversion) -> Result<Converted, MeasureError> {
        let key = checked_key(&new.idempotency_key)?;
        if let Some(first) = self.tables.conversions.get(key)? {
            return Ok((first, false));
        }
        let contact = self.contact_of(&new)?;
        let value = new.value.as_f64().ok_or_else(|| {
            MeasureError::Invalid(format!(
                "value: `{}` is not a number; write 19.99",
                new.value
            ))
        })?;
        let value = checked_value(value)?;
        let currency = checked_currency(&new.currency)?;
        let now = self.clock.now_ms();
        let occurred_at_ms = match &new.occurred_at {
            Some(at) => crate::contacts::fields::parse_datetime(at).ok_or_else(|| {
                MeasureError::Invalid(format!(
                    "occurred_at: `{at}` is not a time; write 2026-03-03T15:00:00Z"
                ))
            })?,
            None => now,
        };
        if occurred_at_ms > now + FUTURE_SKEW_MS {
            return Err(MeasureError::Invalid(
                "occurred_at: the conversion is in the future; send it once it happened".into(),
            ));
        }
        let (touch, attributed_to) = self.attribute(&contact, occurred_at_ms)?;
        let conversion = Conversion {
            id: format!("cnv-{:016x}", self.store.generate_id()?),
            contact: contact.clone(),
            value,
            currency: currency.clone(),
            occurred_at_ms,
            attributed_to,
        };
        let event = FunnelEvent {
            at_ms: occurred_at_ms,
            kind: FunnelKind::Converted,
            our_number: self.our_number.clone(),
            contact,
            value: Some(value),
            currency: Some(currency),
            detail: Some(conversion.id.clone()),
            ..touch.map(without_detail).unwrap_or_default()
        };
        let mut batch = Batch::new();
        self.tables
            .conversions
            .put_in(&mut batch, key, &conversion)?;
        self.tables.funnel.put_in(&mut batch, &event)?;
        self.store.commit(batch).await?;
        Ok((conversion, true))
    }

    /// The contact a conversion names: a known contact or conversation, normalised.
    fn contact_of(&self, new: &NewConversion) -> Result<String, MeasureError> {
        let (field, raw) = match (&new.phone, &new.conversation) {
            (Some(phone), None) => ("phone", phone),
            (None, Some(conversation)) => ("conversation", conversation),
            _ => {
                return Err(MeasureError::Invalid(
                    "name the contact: give `phone` or `conversation` (one of them)".into(),
                ));
            }
        };
        let phone = crate::phone::parse_e164(raw).map_err(|error| {
            MeasureError::Invalid(format!("{field}: `{raw}` is not a number: {error}"))
        })?;
        let key = crate::store::conversations::ConversationKey::new(&self.our_number, &phone);
        let known = self.tables.contact_addresses.get(&phone)?.is_some()
            || self.tables.conversations.get(&key)?.is_some();
        if !known {
            return Err(MeasureError::Unknown(format!(
                "{field}: no contact or conversation has the number {phone}"
            )));
        }
        Ok(phone)
    }

    /// The touch a conversion at `at_ms` goes to, and what the answer says of it: the
    /// newest click inside its program's click window, else the newest delivery inside its
    /// program's delivery window.
    fn attribute(
        &self,
        contact: &str,
        at_ms: i64,
    ) -> Result<(Option<FunnelEvent>, Option<Attribution>), MeasureError> {
        let longest = self
            .windows
            .values()
            .flat_map(|windows| [windows.click, windows.delivery])
            .flatten()
            .chain([self.config.click_window, self.config.delivery_window])
            .max()
            .unwrap_or_default();
        let touches = self
            .tables
            .funnel
            .touches(contact, at_ms - window_ms(longest), at_ms)?;
        let inside = |kind: FunnelKind, touch: &&FunnelEvent| {
            touch.kind == kind && at_ms - touch.at_ms <= window_ms(self.window(kind, touch))
        };
        let found = touches
            .iter()
            .find(|touch| inside(FunnelKind::Clicked, touch))
            .map(|touch| (touch, "click"))
            .or_else(|| {
                touches
                    .iter()
                    .find(|touch| inside(FunnelKind::Delivered, touch))
                    .map(|touch| (touch, "delivery"))
            });
        let Some((touch, by)) = found else {
            return Ok((None, None));
        };
        let attribution = Attribution {
            message: touch.message.clone(),
            flow: touch.flow.clone(),
            campaign: touch.campaign.clone(),
            variant: touch.variant.clone(),
            by: by.to_owned(),
            window: humantime::format_duration(self.window(touch.kind, touch)).to_string(),
        };
        Ok((Some(touch.clone()), Some(attribution)))
    }

    /// The window of a click or delivery `touch`: its program's, else the config's.
    fn window(&self, kind: FunnelKind, touch: &FunnelEvent) -> std::time::Duration {
        let own = touch
            .program
            .as_ref()
            .and_then(|program| self.windows.get(program));
        match kind {
            FunnelKind::Clicked => own
                .and_then(|windows| windows.click)
                .unwrap_or(self.config.click_window),
            _ => own
                .and_then(|windows| windows.delivery)
                .unwrap_or(self.config.delivery_window),
        }
    }
}

fn without_detail(mut event: FunnelEvent) -> FunnelEvent {
    event.detail = None;
    event
}

fn window_ms(window: std::time::Duration) -> i64 {
    i64::try_from(window.as_millis()).unwrap_or(i64::MAX)
}

fn checked_key(key: &str) -> Result<&str, MeasureError> {
    if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
        return Err(MeasureError::Invalid(
            "idempotency_key: write 1 to 200 characters, no control characters".into(),
        ));
    }
    Ok(key)
}

fn checked_value(value: f64) -> Result<f64, MeasureError> {
    if !value.is_finite() || value < 0.0 {
        return Err(MeasureError::Invalid(format!(
            "value: {value} is not a value; write 0 or more (a refund is not a conversion)"
        )));
    }
    if value > MAX_VALUE {
        return Err(MeasureError::Invalid(format!(
            "value: {value} is more than {MAX_VALUE}; send the amount in the currency's main unit"
        )));
    }
    Ok(value)
}

/// A currency code, upper-cased, when it is an ISO 4217 code in use.
fn checked_currency(code: &str) -> Result<String, MeasureError> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() == 3 && ISO_4217.split(' ').any(|known| known == code) {
        return Ok(code);
    }
    Err(MeasureError::Invalid(format!(
        "currency: `{code}` is not an ISO 4217 currency; write USD, EUR, GBP, ..."
    )))
}

/// The ISO 4217 codes in use (2024), space-separated.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
    BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN \
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD \
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT \
    MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR \
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND \
    TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::Store;

    /// A store where +12125550100 was delivered a text of `program` at 0.
    async fn delivered(program: &str) -> Store {
        let store = Store::temporary().unwrap();
        let tables = store.tables();
        let mut batch = Batch::new();
        tables
            .contact_addresses
            .put_in(&mut batch, "+12125550100", 1)
            .unwrap();
        let touch = FunnelEvent {
            kind: FunnelKind::Delivered,
            contact: "+12125550100".to_owned(),
            program: Some(program.to_owned()),
            message: Some("out-1".to_owned()),
            ..FunnelEvent::default()
        };
        tables.funnel.put_in(&mut batch, &touch).unwrap();
        store.commit(batch).await.unwrap();
        store
    }

    #[tokio::test]
    async fn a_programs_own_window_beats_the_default() {
        let clock = Arc::new(crate::clock::ManualClock::new(13 * 3_600_000));
        let order = |key: &str| NewConversion {
            phone: Some("+12125550100".to_owned()),
            value: serde_json::json!(5),
            currency: "USD".to_owned(),
            idempotency_key: key.to_owned(),
            ..NewConversion::default()
        };
        // 13 hours after the delivery: inside the default 24 h.
        let store = delivered("care").await;
        let measurement = Measurement::new(
            &store,
            clock.clone(),
            Default::default(),
            "+15550001000".into(),
        );
        let (conversion, _) = measurement.convert(order("a")).await.unwrap();
        assert_eq!(conversion.attributed_to.unwrap().window, "1day");
        // Outside the program's own 12 h.
        let windows = [(
            "care".to_owned(),
            super::super::Windows {
                click: None,
                delivery: Some(std::time::Duration::from_secs(12 * 3600)),
            },
        )];
        let store = delivered("care").await;
        let measurement =
            Measurement::new(&store, clock, Default::default(), "+15550001000".into())
                .with_windows(windows.into_iter().collect());
        let (conversion, _) = measurement.convert(order("b")).await.unwrap();
        assert!(conversion.attributed_to.is_none());
    }

    #[test]
    fn values_and_currencies_are_checked() {
        assert_eq!(checked_currency(" usd").unwrap(), "USD");
        assert!(checked_currency("XYZ").is_err());
        assert!(checked_currency("US").is_err());
        assert!(checked_value(-1.0).is_err());
        assert!(checked_value(f64::NAN).is_err());
        assert!(checked_value(2e9).is_err());
        assert_eq!(checked_value(19.99).unwrap(), 19.99);
        assert!(checked_key("").is_err());
    }
}
