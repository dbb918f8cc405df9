//! Verification codes: 80 bits from the OS's CSPRNG written as 16 Crockford base32 characters
//! (`0-9`, `A-Z` without `I L O U`) in four groups, `XXXX-XXXX-XXXX-XXXX`.

/// Crockford's base32 alphabet.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new code (`None` if the OS has no randomness to give).
pub fn generate() -> Option<String> {
    let mut bytes = [0u8; 10];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(encode(&bytes))
}

/// The 80 bits of `bytes` as a grouped code.
fn encode(bytes: &[u8; 10]) -> String {
    let mut bits = 0u128;
    for b in bytes {
        bits = (bits << 8) | u128::from(*b);
    }
    let mut out = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let index = (bits >> (75 - 5 * i)) & 31;
        out.push(char::from(ALPHABET[index as usize]));
    }
    out
}

/// The stored form of a code a person typed: any case, with or without hyphens, Crockford's
/// `O` read as `0` and `I`/`L` as `1`. `None` when it cannot be a code.
pub fn normalize(typed: &str) -> Option<String> {
    let mut chars = String::with_capacity(16);
    for c in typed.chars().filter(|c| *c != '-') {
        let c = match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return None;
        }
        chars.push(c);
    }
    if chars.len() != 16 {
        return None;
    }
    Some(
        chars
            .as_bytes()
            .chunks(4)
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect::<Vec<_>>()
            .join("-"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_four_groups_of_crockford_characters_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 19);
        assert!(a.split('-').all(|g| g.len() == 4));
        assert!(a.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        assert_eq!(encode(&[0xff; 10]), "ZZZZ-ZZZZ-ZZZZ-ZZZZ");
        assert_eq!(encode(&[0; 10]), "0000-0000-0000-0000");
    }

    #[test]
    fn typed_codes_are_read_as_crockford_says() {
        assert_eq!(
            normalize("abcd-efgh-jkmn-pqrs").as_deref(),
            Some("ABCD-EFGH-JKMN-PQRS")
        );
        assert_eq!(
            normalize("o1il0000zzzzxxxx").as_deref(),
            Some("0111-0000-ZZZZ-XXXX")
        );
        assert_eq!(normalize("ABCD-EFGH-JKMN-PQRU"), None, "U is not a digit");
        assert_eq!(normalize("ABCD"), None);
        assert_eq!(normalize("ÄBCD-EFGH-JKMN-PQRS"), None);
    }
}
