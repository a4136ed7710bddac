//! Iran's 31 provinces by their ISO 3166-2:IR codes as renumbered in 2020 (`seed/provinces.tsv`).

use std::sync::LazyLock;

/// One province (استان).
#[derive(Debug, Clone, PartialEq)]
pub struct Province {
    /// ISO 3166-2:IR code, such as `IR-23`.
    pub code: &'static str,
    /// English name.
    pub name_en: &'static str,
    /// Persian name.
    pub name_fa: &'static str,
    /// Capital's English name.
    pub capital_en: &'static str,
    /// Capital's Persian name.
    pub capital_fa: &'static str,
    /// Capital's approximate latitude.
    pub capital_lat: f64,
    /// Capital's approximate longitude.
    pub capital_lon: f64,
}

const PROVINCES_TSV: &str = include_str!("../../seed/provinces.tsv");

static PROVINCES: LazyLock<Vec<Province>> = LazyLock::new(|| parse(PROVINCES_TSV));

fn parse(tsv: &'static str) -> Vec<Province> {
    tsv.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("code\t") && !line.is_empty())
        .filter_map(|line| {
            let cols: Vec<&'static str> = line.split('\t').collect();
            let [code, name_en, name_fa, capital_en, capital_fa, lat, lon] = cols[..] else {
                return None;
            };
            Some(Province {
                code,
                name_en,
                name_fa,
                capital_en,
                capital_fa,
                capital_lat: lat.parse().ok()?,
                capital_lon: lon.parse().ok()?,
            })
        })
        .collect()
}

/// Returns every province, in code order.
pub fn all() -> &'static [Province] {
    &PROVINCES
}

/// Looks a province up by its ISO 3166-2:IR code.
pub fn by_code(code: &str) -> Option<&'static Province> {
    PROVINCES.iter().find(|p| p.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_holds_all_31_provinces_with_current_codes() {
        assert_eq!(all().len(), 31);
        assert_eq!(by_code("IR-23").map(|p| p.name_en), Some("Tehran"));
        assert_eq!(by_code("IR-30").map(|p| p.name_fa), Some("البرز"));
        assert_eq!(by_code("IR-24").map(|p| p.capital_en), Some("Ardabil"));
        assert!(by_code("IR-32").is_none(), "IR-32 is a pre-2020 code");
    }
}
