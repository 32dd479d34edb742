//! The SMS segment counter the compliance gate and `smsflow check` bill texts with.
//!
//! Input: the text of a message.

use smsflow::sms::segments::{Encoding, segments};

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let info = segments(text);
    let chars = text.chars().count();
    let (single, per_part) = match info.encoding {
        Encoding::Gsm7 => {
            assert!(chars <= info.units && info.units <= 2 * chars, "{info:?}");
            (160, 153)
        }
        Encoding::Ucs2 => {
            assert_eq!(info.units, text.encode_utf16().count());
            (70, 67)
        }
    };
    if info.units <= single {
        assert_eq!(info.segments, 1, "{info:?}");
    } else {
        // Parts never hold more than they can, and never nothing.
        assert!(info.segments >= info.units.div_ceil(per_part), "{info:?}");
        assert!(info.segments <= info.units, "{info:?}");
    }
    // A longer text never costs less.
    let mut cut = text.len() / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = segments(&text[..cut]);
    assert!(
        prefix.segments <= info.segments,
        "the first {cut} bytes cost {prefix:?}, the whole text {info:?}"
    );
}
