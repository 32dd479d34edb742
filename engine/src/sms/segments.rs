//! SMS segments: how many billed messages a text costs, as Twilio counts them (GSM-7 or UCS-2,
//! concatenated parts, graphemes never split).

use unicode_segmentation::UnicodeSegmentation;

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The GSM 03.38 7-bit default alphabet, with its extension table.
    Gsm7,
    /// UCS-2 (in practice UTF-16), needed as soon as one character is outside GSM-7.
    Ucs2,
}

/// How many SMS segments a text costs, from [`segments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentInfo {
    /// The encoding the whole text needs.
    pub encoding: Encoding,
    /// The text's length in that encoding: septets for GSM-7 (an extension-table character
    /// counts 2), UTF-16 code units for UCS-2. Space lost at segment ends is not included.
    pub units: usize,
    /// Segments billed: 1 for a text that fits one message (including the empty text).
    pub segments: usize,
}

const GSM7_SINGLE: usize = 160;
const GSM7_PER_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PER_PART: usize = 67;

/// Counts the SMS segments `text` costs, as Twilio counts them.
///
/// The text is GSM-7 if every character is in the 3GPP TS 23.038 default alphabet or its
/// extension table (the latter costing 2 septets: an escape and the character), and UCS-2
/// otherwise. A single message holds 160 septets or 70 UTF-16 units; a longer text is sent as
/// concatenated parts of 153 septets or 67 units (the rest of each part carries the header
/// that joins them). Phones show each part as it arrives, so nothing is cut in half at a part's
/// end: a GSM-7 escape pair, a UTF-16 surrogate pair and a whole grapheme cluster (an emoji
/// with a skin tone, a flag, a ZWJ family) move to the next part if they do not fit in what is
/// left. Only a grapheme cluster longer than a whole part (pathological stacks of combining
/// marks) is split, between its characters.
///
/// The empty text counts as 1 segment, as Twilio bills an empty body as one message.
pub fn segments(text: &str) -> SegmentInfo {
    let septets: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    match septets {
        Some(costs) => {
            let units = costs.iter().sum();
            let segments = if units <= GSM7_SINGLE {
                1
            } else {
                let mut parts = Parts::new(GSM7_PER_PART);
                costs.into_iter().for_each(|cost| parts.place(cost));
                parts.count
            };
            SegmentInfo {
                encoding: Encoding::Gsm7,
                units,
                segments,
            }
        }
        None => {
            let units = text.encode_utf16().count();
            let segments = if units <= UCS2_SINGLE {
                1
            } else {
                let mut parts = Parts::new(UCS2_PER_PART);
                for grapheme in text.graphemes(true) {
                    let cost = grapheme.encode_utf16().count();
                    if cost <= UCS2_PER_PART {
                        parts.place(cost);
                    } else {
                        grapheme.chars().for_each(|c| parts.place(c.len_utf16()));
                    }
                }
                parts.count
            };
            SegmentInfo {
                encoding: Encoding::Ucs2,
                units,
                segments,
            }
        }
    }
}

/// Fills concatenated parts in order, never cutting an indivisible run of units.
struct Parts {
    capacity: usize,
    count: usize,
    used: usize,
}

impl Parts {
    fn new(capacity: usize) -> Self {
        Parts {
            capacity,
            count: 1,
            used: 0,
        }
    }

    fn place(&mut self, cost: usize) {
        if self.used + cost > self.capacity && self.used > 0 {
            self.count += 1;
            self.used = 0;
        }
        self.used += cost;
    }
}

/// Septets `c` costs in GSM-7, or `None` if it is not in the alphabet.
fn gsm7_septets(c: char) -> Option<usize> {
    match c {
        // The default alphabet, in table order. The Greek capitals are written as escapes
        // because several look exactly like Latin letters that are elsewhere in the table.
        '@' | '£' | '$' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | '\n' | 'Ø' | 'ø' | '\r'
        | 'Å' | 'å' => Some(1),
        '\u{0394}' /* Δ */ | '_' | '\u{03A6}' /* Φ */ | '\u{0393}' /* Γ */
        | '\u{039B}' /* Λ */ | '\u{03A9}' /* Ω */ | '\u{03A0}' /* Π */ | '\u{03A8}' /* Ψ */
        | '\u{03A3}' /* Σ */ | '\u{0398}' /* Θ */ | '\u{039E}' /* Ξ */ => Some(1),
        'Æ' | 'æ' | 'ß' | 'É' => Some(1),
        ' ' | '!' | '"' | '#' | '¤' | '%' | '&' | '\'' | '('..='?' => Some(1),
        '¡' | 'A'..='Z' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' => Some(1),
        '¿' | 'a'..='z' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        // The extension table: sent as the escape septet followed by the character.
        '\u{0C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn gsm(units: usize, segments: usize) -> SegmentInfo {
        SegmentInfo {
            encoding: Encoding::Gsm7,
            units,
            segments,
        }
    }

    fn ucs2(units: usize, segments: usize) -> SegmentInfo {
        SegmentInfo {
            encoding: Encoding::Ucs2,
            units,
            segments,
        }
    }

    #[test]
    fn empty_text_is_one_segment() {
        assert_eq!(segments(""), gsm(0, 1));
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(segments(&"a".repeat(160)), gsm(160, 1));
        assert_eq!(segments(&"a".repeat(161)), gsm(161, 2));
        assert_eq!(segments(&"a".repeat(306)), gsm(306, 2));
        assert_eq!(segments(&"a".repeat(307)), gsm(307, 3));
        assert_eq!(segments(&"a".repeat(459)), gsm(459, 3));
        assert_eq!(segments(&"a".repeat(460)), gsm(460, 4));
    }

    #[test]
    fn extension_characters_count_two_septets() {
        assert_eq!(segments(&format!("{}€", "a".repeat(158))), gsm(160, 1));
        assert_eq!(segments(&format!("{}€", "a".repeat(159))), gsm(161, 2));
        assert_eq!(segments("^{}\\[~]|€\u{0C}"), gsm(20, 1));
    }

    #[test]
    fn escape_pair_is_never_split_across_segments() {
        // 152 + 2 + 152 = 306 septets would fill exactly two parts, but the `{` cannot start
        // in the last septet of part 1: part 1 holds 152, part 2 holds `{` + 151 'a', and the
        // last 'a' needs a third part.
        let straddling = format!("{}{{{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&straddling), gsm(306, 3));
        let fits = format!("{}{{{}", "a".repeat(152), "a".repeat(151));
        assert_eq!(segments(&fits), gsm(305, 2));
        // Ending exactly on the boundary is fine.
        let exact = format!("{}{{{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(segments(&exact), gsm(306, 2));
    }

    #[test]
    fn whole_gsm7_table_is_single_septet() {
        let basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                     ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
        // 128 positions, less the escape code.
        assert_eq!(basic.chars().count(), 127);
        assert_eq!(segments(basic), gsm(127, 1));
        for c in basic.chars() {
            assert_eq!(gsm7_septets(c), Some(1), "{c:?}");
        }
    }

    #[test]
    fn characters_outside_the_table_force_ucs2() {
        assert_eq!(segments("é").encoding, Encoding::Gsm7);
        assert_eq!(segments("á"), ucs2(1, 1));
        for text in [
            "í",
            "ó",
            "ú",
            "ç",
            "`",
            "\t",
            "“quoted”",
            "it’s",
            "\u{1B}",
            "Ω\u{2126}",
        ] {
            assert_eq!(segments(text).encoding, Encoding::Ucs2, "{text:?}");
        }
    }

    #[test]
    fn emoji_forces_ucs2_and_counts_utf16_units() {
        assert_eq!(segments("Hi 👍"), ucs2(5, 1));
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(segments(&"á".repeat(70)), ucs2(70, 1));
        assert_eq!(segments(&"á".repeat(71)), ucs2(71, 2));
        assert_eq!(segments(&"á".repeat(134)), ucs2(134, 2));
        assert_eq!(segments(&"á".repeat(135)), ucs2(135, 3));
        // Extension characters are one unit like any other in UCS-2.
        assert_eq!(segments(&format!("{}€", "á".repeat(69))), ucs2(70, 1));
    }

    #[test]
    fn surrogate_pair_moves_whole_to_the_next_segment() {
        // 66 + 2 + 66 = 134 units would fill two parts exactly, but the emoji cannot start in
        // the last unit of part 1.
        let text = format!("{}😀{}", "á".repeat(66), "á".repeat(66));
        assert_eq!(segments(&text), ucs2(134, 3));
        let text = format!("{}😀{}", "á".repeat(65), "á".repeat(67));
        assert_eq!(segments(&text), ucs2(134, 2));
    }

    #[test]
    fn grapheme_cluster_moves_whole_to_the_next_segment() {
        // 👍🏽 is two surrogate pairs in one grapheme: splitting only between surrogate pairs
        // would give 2 parts; keeping the grapheme whole needs 3.
        let text = format!("{}👍🏽{}", "á".repeat(65), "á".repeat(65));
        assert_eq!(segments(&text), ucs2(134, 3));
        let flag = format!("{}🇫🇷{}", "á".repeat(65), "á".repeat(65));
        assert_eq!(segments(&flag), ucs2(134, 3));
        // The family is 4 emoji and 3 zero-width joiners: 11 units.
        let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
        assert_eq!(segments(family), ucs2(11, 1));
        let text = format!("{}{family}{}", "á".repeat(60), "á".repeat(63));
        assert_eq!(segments(&text), ucs2(134, 3));
        let text = format!("{}{family}{}", "á".repeat(56), "á".repeat(67));
        assert_eq!(segments(&text), ucs2(134, 2));
    }

    #[test]
    fn oversized_grapheme_splits_between_characters_only() {
        // One grapheme of 30 emoji joined by ZWJ: 89 units, more than a part holds.
        let chain = vec!["😀"; 30].join("\u{200D}");
        assert_eq!(chain.graphemes(true).count(), 1);
        let text = format!("{}{chain}", "á".repeat(66));
        // Part 1: 66 (the first emoji does not fit in the 1 unit left); part 2: 22 × (emoji +
        // joiner) = 66, again 1 unit short for an emoji; part 3: the remaining 23.
        assert_eq!(segments(&text), ucs2(155, 3));
        let marks = format!("e{}", "\u{0301}".repeat(140));
        assert_eq!(segments(&marks), ucs2(141, 3));
    }

    #[test]
    fn segment_counts_respect_their_bounds() {
        const PIECES: [&str; 16] = [
            "a",
            "Hello ",
            "é",
            "{",
            "€",
            "\n",
            "Ω",
            "á",
            "😀",
            "👍🏽",
            "🇫🇷",
            "👨\u{200D}👩\u{200D}👧\u{200D}👦",
            "’",
            " ",
            "0123456789",
            "~",
        ];
        let mut seed: u64 = 0x5EED_5EED_1234_5678;
        let mut next = move || {
            // A fixed LCG keeps the loop deterministic without a dependency.
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for round in 0..2_000 {
            let gsm_only = round % 2 == 0;
            let length = next() % 200;
            let mut text = String::new();
            for _ in 0..length {
                let piece = PIECES[next() % PIECES.len()];
                if gsm_only && piece.chars().any(|c| gsm7_septets(c).is_none()) {
                    continue;
                }
                text.push_str(piece);
            }
            let info = segments(&text);
            let is_gsm = text.chars().all(|c| gsm7_septets(c).is_some());
            let (single, per_part, max_waste) = if is_gsm {
                assert_eq!(info.encoding, Encoding::Gsm7, "{text:?}");
                let septets: usize = text.chars().filter_map(gsm7_septets).sum();
                assert_eq!(info.units, septets, "{text:?}");
                (GSM7_SINGLE, GSM7_PER_PART, 1)
            } else {
                assert_eq!(info.encoding, Encoding::Ucs2, "{text:?}");
                assert_eq!(info.units, text.encode_utf16().count(), "{text:?}");
                // The largest grapheme among the pieces is the 11-unit family.
                (UCS2_SINGLE, UCS2_PER_PART, 10)
            };
            if info.units <= single {
                assert_eq!(info.segments, 1, "{text:?}");
            } else {
                assert!(info.segments > 1, "{text:?}");
                assert!(info.segments >= info.units.div_ceil(per_part), "{text:?}");
                assert!(
                    info.segments <= info.units.div_ceil(per_part - max_waste),
                    "{text:?}"
                );
            }
        }
    }
}
