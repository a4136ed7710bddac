//! Place names as callers type them. Persian spellings vary in the wild — a zero-width non-joiner
//! or a space inside a name (`خرم آباد`, `خرم‌آباد`), Arabic `ي`/`ك` for Persian `ی`/`ک`,
//! Arabic-Indic digits, a leading «شهرستان» — and English ones in case, hyphens and spaces. Names
//! are matched on one normalised form; the directory stores and shows the canonical spelling.

/// The form two spellings of one name share: Persian letters for their Arabic look-alikes,
/// ASCII digits, lower case, and no spaces, zero-width joiners, hyphens, apostrophes, dots,
/// diacritics or tatweel; a leading «شهرستان» and a leading or trailing "county" go.
pub fn normalise(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            'ي' | 'ى' | 'ئ' => folded.push('ی'),
            'ك' => folded.push('ک'),
            'ة' | 'ۀ' => folded.push('ه'),
            'أ' | 'إ' | 'ٱ' => folded.push('ا'),
            'ؤ' => folded.push('و'),
            '٠'..='٩' => folded.push(char::from(b'0' + (c as u32 - '٠' as u32) as u8)),
            '۰'..='۹' => folded.push(char::from(b'0' + (c as u32 - '۰' as u32) as u8)),
            // Harakat, tanwin, shadda, sukun, superscript alef; tatweel.
            '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{0640}' => {}
            c if c.is_whitespace() || is_joiner_or_mark(c) => folded.push(' '),
            c => folded.extend(c.to_lowercase()),
        }
    }
    let mut words: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
    // «شهرستان X» and "X County" name the county X.
    if words.len() > 1 && matches!(words[0], "شهرستان" | "county" | "shahrestan") {
        words.remove(0);
    }
    if words.len() > 1 && words.last().is_some_and(|w| *w == "county") {
        words.pop();
    }
    let mut joined = words.concat();
    // The prefix written together with the name, without a space or joiner.
    if let Some(rest) = joined.strip_prefix("شهرستان")
        && !rest.is_empty()
    {
        joined = rest.to_owned();
    }
    joined
}

/// Characters that separate or join the parts of a name without being part of it.
fn is_joiner_or_mark(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner, direction marks
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '-'
            | '\u{2010}'..='\u{2015}'
            | '_'
            | '\''
            | '\u{2019}'
            | '`'
            | '.'
            | ','
            | '،'
    )
}

/// How many single-character edits turn `a` into `b` (Levenshtein), for suggesting the names
/// closest to one that matches nothing.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_name_share_a_form() {
        let same = [
            ("خرم آباد", "خرم‌آباد"),
            ("خرم‌ آباد", "خرمآباد"),
            ("كرمانشاه", "کرمانشاه"),
            ("تهران", "شهرستان تهران"),
            ("تهران", "شهرستان‌تهران"),
            ("تهران", "شهرستانتهران"),
            ("Tehran", " tehran "),
            ("Tehran", "TEHRAN County"),
            ("Torbat-e Heydarieh", "torbat-e-heydarieh"),
            ("Torbat-e Heydarieh", "Torbat e Heydarieh"),
            ("قدس ۲", "قدس 2"),
            ("قدس ٢", "قدس 2"),
            ("بيله سوار", "بیله‌سوار"),
            ("تـهـران", "تهران"),
        ];
        for (a, b) in same {
            assert_eq!(normalise(a), normalise(b), "{a} / {b}");
        }
    }

    #[test]
    fn different_names_stay_different() {
        assert_ne!(normalise("Rey"), normalise("Ray"));
        assert_ne!(normalise("آشتیان"), normalise("اشتیان").replace('ا', "آ"));
        // «شهرستان» alone is not emptied: it names nothing, and matches nothing.
        assert_eq!(normalise("شهرستان"), "شهرستان");
        assert_eq!(normalise("  "), "");
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("tehran", "tehran"), 0);
        assert_eq!(edit_distance("tehrn", "tehran"), 1);
        assert_eq!(edit_distance("tehran", "tehrna"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("تهرن", "تهران"), 1);
    }
}
