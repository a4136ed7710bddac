//! The violations of one request, collected field by field with their paths, so one
//! `INVALID_ARGUMENT` names every bad field.

use super::*;

/// Collects the violations of one request.
#[derive(Default)]
pub(super) struct Violations(pub(super) Vec<FieldViolation>);

impl Violations {
    pub(super) fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// A required enumeration.
    pub(super) fn enumeration<T: WireEnum>(&mut self, field: &str, raw: i32) -> Option<T> {
        let value = T::from_wire(raw);
        if value.is_none() {
            if raw == 0 {
                self.add(field, "is required (the unspecified value is not accepted)");
            } else {
                self.add(field, format!("has an unknown value {raw}"));
            }
        }
        value
    }

    /// An optional enumeration: `Some(None)` when absent, `None` when present but invalid.
    pub(super) fn optional_enumeration<T: WireEnum>(
        &mut self,
        field: &str,
        raw: Option<i32>,
    ) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(value) => self.enumeration(field, value).map(Some),
        }
    }

    /// Optional text of at most `max` characters; empty means absent. Short fields may not hold
    /// control characters; long ones (`multiline`) may hold line breaks and tabs.
    pub(super) fn text(
        &mut self,
        field: &str,
        value: String,
        max: usize,
        multiline: bool,
    ) -> Option<String> {
        let value = value.trim().to_owned();
        if value.chars().count() > max {
            self.add(field, format!("is longer than {max} characters"));
            return None;
        }
        let bad_char = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'));
        if value.chars().any(bad_char) {
            self.add(field, "contains control characters");
            return None;
        }
        (!value.is_empty()).then_some(value)
    }

    /// Required text of at most `max` characters.
    pub(super) fn required_text(
        &mut self,
        field: &str,
        value: String,
        max: usize,
    ) -> Option<String> {
        let missing = value.trim().is_empty();
        let value = self.text(field, value, max, false);
        if missing {
            self.add(field, "is required");
        }
        value
    }

    /// Sensitive optional text.
    pub(super) fn secret(
        &mut self,
        field: &str,
        value: String,
        max: usize,
    ) -> Option<Sensitive<String>> {
        self.text(field, value, max, false).map(Sensitive::new)
    }

    /// An optional phone number: digits with an optional leading `+`.
    pub(super) fn phone(&mut self, field: &str, value: String) -> Option<Sensitive<String>> {
        let number = self.text(field, value, limits::MAX_PHONE, false)?;
        let digits = number.strip_prefix('+').unwrap_or(&number);
        if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            self.add(
                field,
                "must be 3 to 32 digits, optionally after a leading +",
            );
            return None;
        }
        Some(Sensitive::new(number))
    }

    /// A required province code.
    pub(super) fn province(&mut self, field: &str, value: String) -> Option<String> {
        let code = self.required_text(field, value, limits::MAX_SHORT_TEXT)?;
        if province::by_code(&code).is_none() {
            self.add(
                field,
                "is not an ISO 3166-2:IR province code as renumbered in 2020 (IR-00 to IR-30)",
            );
            return None;
        }
        Some(code)
    }

    /// A required message.
    pub(super) fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value
    }

    /// A timestamp, if present.
    pub(super) fn time(
        &mut self,
        field: &str,
        value: Option<prost_types::Timestamp>,
    ) -> Option<DateTime<Utc>> {
        let value = value?;
        let time = u32::try_from(value.nanos)
            .ok()
            .and_then(|nanos| DateTime::from_timestamp(value.seconds, nanos));
        if time.is_none() {
            self.add(field, "is not a valid timestamp");
        }
        time
    }

    pub(super) fn finish<T>(self, value: Option<T>) -> Result<T, Error> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ if self.0.is_empty() => Err(Error::internal("conversion failed without a violation")),
            _ => Err(Error::InvalidArgument(self.0)),
        }
    }
}

impl Violations {
    /// A required position.
    pub(super) fn position(
        &mut self,
        field: &str,
        raw: Option<pb::Coordinates>,
    ) -> Option<(f64, f64)> {
        let position = self.required(field, raw)?;
        let valid = position.latitude.is_finite()
            && position.longitude.is_finite()
            && (-90.0..=90.0).contains(&position.latitude)
            && (-180.0..=180.0).contains(&position.longitude);
        if !valid {
            self.add(
                field,
                "must be a latitude from -90 to 90 and a longitude from -180 to 180",
            );
        }
        valid.then_some((position.latitude, position.longitude))
    }

    /// A list of required enumerations.
    pub(super) fn enumerations<T: WireEnum>(&mut self, field: &str, raw: &[i32]) -> Option<Vec<T>> {
        let values: Vec<Option<T>> = raw
            .iter()
            .enumerate()
            .map(|(i, &value)| self.enumeration(&format!("{field}[{i}]"), value))
            .collect();
        values.into_iter().collect()
    }
}
