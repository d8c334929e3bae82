//! Does a continuation read as language? Measures a generated text the way the probe
//! rules judge it: words (alphabetic runs) and the share found in an embedded English
//! word list, whether there is anything but whitespace and punctuation, and whether the
//! token stream ends in a degenerate loop (one token, or a short n-gram, repeated to the
//! end). The word list is `words.txt` (see scripts/gen-wordlist.py), front-coded.

use std::collections::HashSet;
use std::sync::OnceLock;

const WORDS: &str = include_str!("words.txt");

/// The embedded word list, decoded once.
fn word_list() -> &'static HashSet<String> {
    static LIST: OnceLock<HashSet<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut set = HashSet::with_capacity(65_536);
        let mut prev = String::new();
        for line in WORDS.lines() {
            let mut chars = line.chars();
            let shared = chars.next().and_then(|c| c.to_digit(10)).unwrap_or(0) as usize;
            let mut word: String = prev.chars().take(shared).collect();
            word.push_str(chars.as_str());
            set.insert(word.clone());
            prev = word;
        }
        set
    })
}

/// Whether `word` (any case) is an English word: in the list, or a possessive of one.
pub fn is_english_word(word: &str) -> bool {
    let lower = word.to_lowercase();
    let list = word_list();
    list.contains(&lower)
        || lower
            .strip_suffix("'s")
            .or_else(|| lower.strip_suffix('\''))
            .is_some_and(|stem| list.contains(stem))
}

/// Alphabetic words of a text (letters, with inner apostrophes).
pub fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphabetic() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .collect()
}

/// What the probe measures on one continuation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TextMeasures {
    pub words: usize,
    pub english_words: usize,
    /// english_words / words (0 when there are no words).
    pub word_share: f64,
    /// Nothing but whitespace, punctuation and symbols.
    pub blank: bool,
    /// The loop the token stream ends in, if degenerate: (period, repetitions).
    pub loop_at_end: Option<(usize, usize)>,
}

/// Measure a continuation (its text and its token ids).
pub fn measure(text: &str, tokens: &[u32]) -> TextMeasures {
    let ws = words(text);
    let english = ws.iter().filter(|w| is_english_word(w)).count();
    TextMeasures {
        words: ws.len(),
        english_words: english,
        word_share: if ws.is_empty() {
            0.0
        } else {
            english as f64 / ws.len() as f64
        },
        blank: !text.chars().any(char::is_alphanumeric),
        loop_at_end: degenerate_loop(tokens),
    }
}

/// A degenerate ending: the same token at least 6 times, or an n-gram (n ≤ 8) repeated
/// at least 3 full times, at the end, covering at least half of the tokens. A fluent
/// continuation that starts to repeat a sentence (as small models do) is not flagged.
pub fn degenerate_loop(tokens: &[u32]) -> Option<(usize, usize)> {
    for period in 1..=8usize {
        let needed = if period == 1 { 6 } else { 3 };
        if tokens.len() < period * needed {
            continue;
        }
        let tail = &tokens[tokens.len() - period..];
        let mut reps = 1;
        while tokens.len() >= period * (reps + 1) {
            let start = tokens.len() - period * (reps + 1);
            if &tokens[start..start + period] != tail {
                break;
            }
            reps += 1;
        }
        if reps >= needed && period * reps * 2 >= tokens.len() {
            return Some((period, reps));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_list_knows_common_and_inflected_words() {
        for w in [
            "the",
            "Paris",
            "States",
            "has",
            "approximately",
            "walked",
            "hydrogen",
            "It's",
        ] {
            assert!(is_english_word(w), "{w}");
        }
        for w in ["xqzt", "ingthe", "asdfgh"] {
            assert!(!is_english_word(w), "{w}");
        }
        assert!(word_list().len() > 50_000);
    }

    #[test]
    fn measures_text() {
        let m = measure(
            " Paris.\n\nThe United States has a population of approximately 311 million people.",
            &[1, 2, 3],
        );
        assert_eq!(m.words, 11);
        assert!(m.word_share > 0.9, "{m:?}");
        assert!(!m.blank);
        assert!(measure(" ... !!! \n", &[]).blank);
        let gibberish = measure("ingthe xqz ptrl asdfgh the", &[]);
        assert!(gibberish.word_share < 0.5, "{gibberish:?}");
    }

    #[test]
    fn loops() {
        assert_eq!(degenerate_loop(&[5; 10]), Some((1, 10)));
        assert_eq!(
            degenerate_loop(&[1, 2, 3, 4, 5, 9, 9, 9, 9, 9]),
            None,
            "5 repeats of one token is not yet a loop"
        );
        assert_eq!(degenerate_loop(&[7, 1, 2, 1, 2, 1, 2, 1, 2]), Some((2, 4)));
        // The reference SmolLM2 continuation repeats a 17-token sentence less than twice.
        let reference = [
            7042, 30, 198, 198, 504, 1797, 1918, 553, 253, 2155, 282, 4723, 216, 35, 33, 33, 2215,
            701, 30, 198, 198, 504, 1797, 1918, 553, 253, 2155, 282, 4723, 216, 35, 33,
        ];
        assert_eq!(degenerate_loop(&reference), None);
    }
}
