//! Case references a person can read aloud on the phone: `123-000042-7`.
//!
//! The line's number comes first so the listener knows where the case lives; then the case's
//! number on that line, at least six digits; then a Damm check digit, which catches every single
//! wrong digit and every swap of two neighbouring digits — the usual mistakes over a bad line.
//! Digits only: Latin letters are awkward to spell out in Persian.

use super::types::Line;

/// Damm's quasigroup of order 10 (weakly totally anti-symmetric).
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// Returns the Damm check digit of a string of decimal digits.
fn check_digit(digits: &str) -> u8 {
    digits.bytes().fold(0, |interim, d| {
        DAMM[usize::from(interim)][usize::from(d - b'0')]
    })
}

/// Formats the reference of case number `number` on `line`.
pub fn format(line: Line, number: u64) -> String {
    let digits = format!("{number:06}");
    let check = check_digit(&digits);
    format!("{}-{digits}-{check}", line.dial_code())
}

/// True when `reference` is well formed and its check digit matches.
pub fn is_valid(reference: &str) -> bool {
    let mut parts = reference.split('-');
    let (Some(line), Some(digits), Some(check), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    matches!(line, "123" | "1480")
        && digits.len() >= 6
        && all_digits(digits)
        && check.len() == 1
        && all_digits(check)
        && check.as_bytes()[0] - b'0' == check_digit(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_show_the_line_a_padded_number_and_a_check_digit() {
        assert_eq!(format(Line::Emergency123, 42), "123-000042-7");
        assert_eq!(format(Line::Hotline1480, 1), "1480-000001-3");
        assert_eq!(format(Line::Emergency123, 12_345_678), "123-12345678-6");
        // The textbook example of Damm's algorithm: 572 gets check digit 4.
        assert_eq!(check_digit("572"), 4);
        assert!(is_valid(&format(Line::Hotline1480, 987_654)));
    }

    #[test]
    fn the_check_digit_catches_any_single_wrong_digit_and_any_neighbour_swap() {
        for number in [42_u64, 100_203, 999_999, 7_000_001] {
            let reference = format(Line::Emergency123, number);
            let (prefix, rest) = reference.split_at(4);
            let digits = &rest[..rest.len() - 2];
            let check = &rest[rest.len() - 2..];
            for i in 0..digits.len() {
                for wrong in b'0'..=b'9' {
                    let mut bytes = digits.as_bytes().to_vec();
                    if bytes[i] == wrong {
                        continue;
                    }
                    bytes[i] = wrong;
                    let misheard = format!("{prefix}{}{check}", String::from_utf8(bytes).unwrap());
                    assert!(!is_valid(&misheard), "{misheard} passed for {reference}");
                }
                if i + 1 < digits.len() && digits.as_bytes()[i] != digits.as_bytes()[i + 1] {
                    let mut bytes = digits.as_bytes().to_vec();
                    bytes.swap(i, i + 1);
                    let swapped = format!("{prefix}{}{check}", String::from_utf8(bytes).unwrap());
                    assert!(!is_valid(&swapped), "{swapped} passed for {reference}");
                }
            }
        }
    }

    #[test]
    fn malformed_references_are_invalid() {
        for bad in [
            "",
            "123",
            "123-00042-7",
            "999-000042-7",
            "123-000042-77",
            "123-00004x-7",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
