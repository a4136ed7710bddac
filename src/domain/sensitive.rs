//! A wrapper for values that must never reach a log: names, numbers, addresses, narratives.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Holds a sensitive value. `Debug` prints a placeholder, so a stray `?value` in a log line, a
/// panic message or an error chain cannot leak what a caller said. The value itself is reached
/// only through [`Sensitive::expose`], which makes every read visible in the code.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    /// Wraps a sensitive value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Returns the value, for storage and for the callers allowed to see it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let name = Sensitive::new(String::from("Maryam Ahmadi"));
        assert_eq!(format!("{name:?}"), "<redacted>");
        assert_eq!(name.expose(), "Maryam Ahmadi");
    }

    #[test]
    fn serialises_as_the_plain_value() {
        let number = Sensitive::new(String::from("09120000000"));
        assert_eq!(serde_json::to_string(&number).unwrap(), "\"09120000000\"");
    }
}
