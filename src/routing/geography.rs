//! Iran's counties (شهرستان), built into the service: `seed/counties.tsv`, derived from
//! OpenStreetMap's administrative boundaries (admin_level 5), © OpenStreetMap contributors,
//! available under the Open Database License (ODbL 1.0). Each county's stable id is its
//! OpenStreetMap relation id. The provinces' neighbours are derived from the counties'
//! adjacency, nearest capital first.
//!
//! Geography says where counties are and which touch; which county covers which (شهرستان معین)
//! is the organisation's decision and comes with the directory.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use super::directory::{County, DirectoryData, ProvinceEntry};
use crate::domain::names::normalise;
use crate::domain::province;

const COUNTIES_TSV: &str = include_str!("../../seed/counties.tsv");

/// English names the source lacks, romanised here as they are usually written.
const ENGLISH_NAMES_SUPPLIED: [(&str, &str); 3] = [
    ("6556347", "Gonbaki"),
    ("19515969", "Jazmurian"),
    ("14474227", "Marvast"),
];

/// The counties and the provinces' neighbours.
#[derive(Debug)]
pub struct Geography {
    /// Every county, in the source's order (by province, then relation id).
    pub counties: Vec<County>,
    /// Every province with the provinces whose counties touch its own, nearest capital first.
    pub provinces: Vec<ProvinceEntry>,
}

/// The built-in geography.
pub fn geography() -> &'static Geography {
    static GEOGRAPHY: LazyLock<Geography> = LazyLock::new(|| parse(COUNTIES_TSV));
    &GEOGRAPHY
}

/// What the built-in geography adds to `data`: the counties it lacks, its id for each county it
/// holds under any spelling of the name without one, and the neighbours of each province it
/// has none for. A county, a cover or neighbours set by the directory stay as they are.
pub fn missing_from(data: &DirectoryData) -> DirectoryData {
    let geography = geography();
    let mut additions = DirectoryData::default();
    let known: HashMap<(&str, String), &County> = data
        .counties
        .iter()
        .flat_map(|c| {
            [
                ((c.province.as_str(), normalise(&c.name_en)), c),
                ((c.province.as_str(), normalise(&c.name_fa)), c),
            ]
        })
        .collect();
    for county in &geography.counties {
        let existing = [&county.name_en, &county.name_fa]
            .iter()
            .find_map(|name| known.get(&(county.province.as_str(), normalise(name))));
        match existing {
            None => additions.counties.push(county.clone()),
            Some(existing) if existing.id.is_none() => additions.counties.push(County {
                id: county.id.clone(),
                ..(*existing).clone()
            }),
            Some(_) => {}
        }
    }
    for province in &geography.provinces {
        let has_neighbours = data
            .provinces
            .iter()
            .any(|p| p.code == province.code && !p.neighbours.is_empty());
        if !has_neighbours {
            additions.provinces.push(province.clone());
        }
    }
    additions
}

fn parse(tsv: &str) -> Geography {
    let mut counties = Vec::new();
    let mut touching: Vec<(String, Vec<String>)> = Vec::new();
    let rows = tsv
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .skip(1);
    for line in rows {
        let fields: Vec<&str> = line.split('\t').collect();
        let [
            province,
            id,
            _wikidata,
            name_fa,
            name_en,
            lat,
            lon,
            seat_lat,
            seat_lon,
            neighbours,
        ] = fields[..]
        else {
            panic!("seed/counties.tsv: a row without ten fields: {line}");
        };
        let number = |text: &str| text.parse::<f64>().ok();
        // The seat where the source knows it, else the boundary's centroid.
        let (lat, lon) = match (number(seat_lat), number(seat_lon)) {
            (Some(lat), Some(lon)) => (lat, lon),
            _ => (
                number(lat).expect("seed/counties.tsv: a centroid"),
                number(lon).expect("seed/counties.tsv: a centroid"),
            ),
        };
        let name_en = match ENGLISH_NAMES_SUPPLIED.iter().find(|(osm, _)| *osm == id) {
            Some((_, supplied)) if name_en.is_empty() => (*supplied).to_owned(),
            _ => name_en.to_owned(),
        };
        counties.push(County {
            id: Some(id.to_owned()),
            province: province.to_owned(),
            name_en,
            name_fa: name_fa.to_owned(),
            lat,
            lon,
            covered_by: None,
        });
        touching.push((
            id.to_owned(),
            neighbours
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
        ));
    }
    let province_of: HashMap<&str, &str> = counties
        .iter()
        .filter_map(|c| Some((c.id.as_deref()?, c.province.as_str())))
        .collect();
    let mut neighbours: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (id, touches) in &touching {
        let own = province_of[id.as_str()];
        for other in touches {
            if let Some(&theirs) = province_of.get(other.as_str())
                && theirs != own
            {
                neighbours.entry(own).or_default().insert(theirs);
            }
        }
    }
    let provinces = province::all()
        .iter()
        .map(|p| {
            let mut near: Vec<&str> = neighbours
                .get(p.code)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default();
            let from = (p.capital_lat, p.capital_lon);
            near.sort_by(|a, b| {
                let distance = |code: &str| {
                    province::by_code(code).map_or(f64::MAX, |q| {
                        super::directory::distance_km(from, (q.capital_lat, q.capital_lon))
                    })
                };
                distance(a).total_cmp(&distance(b)).then(a.cmp(b))
            });
            ProvinceEntry {
                code: p.code.to_owned(),
                neighbours: near.into_iter().map(str::to_owned).collect(),
            }
        })
        .collect();
    Geography {
        counties,
        provinces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_geography_fills_what_a_directory_lacks_and_keeps_what_it_holds() {
        let everything = missing_from(&DirectoryData::default());
        assert_eq!(everything.counties.len(), 478);
        assert_eq!(everything.provinces.len(), 31);

        // A directory that spells two counties its own way and covers one of them.
        let mut data = DirectoryData::default();
        data.counties.push(County {
            id: None,
            province: "IR-24".into(),
            name_en: "Meshgin Shahr".into(),
            name_fa: "مشگین‌شهر".into(),
            lat: 38.4,
            lon: 47.68,
            covered_by: Some("Ardabil".into()),
        });
        data.counties.push(County {
            id: Some("6554871".into()),
            province: "IR-24".into(),
            name_en: "Ardabil".into(),
            name_fa: "اردبیل".into(),
            lat: 38.25,
            lon: 48.29,
            covered_by: None,
        });
        data.provinces.push(ProvinceEntry {
            code: "IR-24".into(),
            neighbours: vec!["IR-03".into()],
        });
        let added = missing_from(&data);
        assert_eq!(added.counties.len(), 477, "all but the one with an id");
        let meshgin = added
            .counties
            .iter()
            .find(|c| c.id.as_deref() == Some("6555209"))
            .unwrap();
        assert_eq!(meshgin.name_en, "Meshgin Shahr", "its spelling stays");
        assert_eq!(
            meshgin.covered_by.as_deref(),
            Some("Ardabil"),
            "its cover stays"
        );
        assert!(!added.counties.iter().any(|c| c.name_en == "Meshkinshahr"));
        assert_eq!(
            added.provinces.len(),
            30,
            "Ardabil's neighbours stay as set"
        );
        let mut merged = data.clone();
        merged.merge(added);
        assert!(missing_from(&merged).counties.is_empty());
        assert!(missing_from(&merged).provinces.is_empty());
    }

    #[test]
    fn every_county_of_every_province_is_there_once() {
        let geography = geography();
        // The source has 478 rows, one more than the 477 its README counts; each is a distinct county.
        assert_eq!(geography.counties.len(), 478);
        let provinces: BTreeSet<&str> = geography
            .counties
            .iter()
            .map(|c| c.province.as_str())
            .collect();
        assert_eq!(provinces.len(), 31);
        let mut names = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for county in &geography.counties {
            assert!(province::by_code(&county.province).is_some());
            assert!(!county.name_en.is_empty(), "{county:?}");
            assert!(!county.name_fa.is_empty(), "{county:?}");
            assert!((24.0..40.5).contains(&county.lat) && (44.0..63.5).contains(&county.lon));
            assert!(ids.insert(county.id.clone().unwrap()));
            for name in [&county.name_en, &county.name_fa] {
                assert!(
                    names.insert((county.province.clone(), normalise(name))),
                    "{} is two counties of {}",
                    name,
                    county.province
                );
            }
        }
    }

    #[test]
    fn provinces_neighbour_those_their_counties_touch_nearest_first() {
        let geography = geography();
        assert_eq!(geography.provinces.len(), 31);
        let of = |code: &str| {
            &geography
                .provinces
                .iter()
                .find(|p| p.code == code)
                .unwrap()
                .neighbours
        };
        // Tehran: Alborz (Karaj) is nearest, then Qom; Semnan, Mazandaran and Markazi touch it.
        let tehran = of("IR-23");
        assert_eq!(tehran[0], "IR-30");
        for code in ["IR-25", "IR-20", "IR-02", "IR-00"] {
            assert!(tehran.iter().any(|n| n == code), "{code} in {tehran:?}");
        }
        // Adjacency goes both ways and every province touches another.
        for entry in &geography.provinces {
            assert!(!entry.neighbours.is_empty(), "{}", entry.code);
            for neighbour in &entry.neighbours {
                assert!(
                    of(neighbour).contains(&entry.code),
                    "{} / {neighbour}",
                    entry.code
                );
            }
        }
    }
}
