//! The shapes data set's captions: what a caption names ([`Mention`],
//! [`CaptionSpec`]), the caption writer (full descriptions and the partial
//! ones people type: "a green triangle", "a triangle", "a red one", "two
//! red circles") and the reader that turns any caption back into what it
//! names, so the checker scores only those attributes.

use super::shapes::{ShapeObject, COLOURS, POSITIONS};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What a caption says about one object; `None`: the caption leaves the
/// attribute out, and the model may draw any value of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mention {
    /// Index into `COLOURS`.
    pub colour: Option<usize>,
    /// Index into `SHAPES`.
    pub shape: Option<usize>,
    /// Index into `SIZES`.
    pub size: Option<usize>,
    /// Index into `POSITIONS`.
    pub position: Option<usize>,
}

impl Mention {
    /// Every attribute of `o`.
    pub fn full(o: &ShapeObject) -> Self {
        Self {
            colour: Some(o.colour),
            shape: Some(o.shape),
            size: Some(o.size),
            position: Some(o.position),
        }
    }

    /// Whether `o` has every attribute the mention names.
    pub fn describes(&self, o: &ShapeObject) -> bool {
        let ok = |want: Option<usize>, have: usize| want.is_none_or(|w| w == have);
        ok(self.colour, o.colour)
            && ok(self.shape, o.shape)
            && ok(self.size, o.size)
            && ok(self.position, o.position)
    }

    /// Whether it names anything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether it names colour, shape, size and position.
    pub fn is_full(&self) -> bool {
        self.colour.is_some()
            && self.shape.is_some()
            && self.size.is_some()
            && self.position.is_some()
    }
}

/// What a whole caption names: one mention per object it speaks of ("two
/// red circles" is two equal mentions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptionSpec {
    pub objects: Vec<Mention>,
}

impl CaptionSpec {
    /// Whether a scene fits the caption: as many objects as mentions, each
    /// mention describing a different object.
    pub fn describes(&self, objects: &[ShapeObject]) -> bool {
        if objects.len() != self.objects.len() {
            return false;
        }
        fn assign(ms: &[Mention], free: &mut [bool], objects: &[ShapeObject]) -> bool {
            let Some((m, rest)) = ms.split_first() else {
                return true;
            };
            for i in 0..objects.len() {
                if free[i] && m.describes(&objects[i]) {
                    free[i] = false;
                    if assign(rest, free, objects) {
                        return true;
                    }
                    free[i] = true;
                }
            }
            false
        }
        assign(&self.objects, &mut vec![true; objects.len()], objects)
    }

    /// Whether every mention names every attribute.
    pub fn is_full(&self) -> bool {
        !self.objects.is_empty() && self.objects.iter().all(Mention::is_full)
    }
}

/// Words for each attribute value that captions use and the reader knows.
/// The first word of each list is the canonical name.
const SHAPE_WORDS: [&[&str]; 3] = [
    &["circle", "disc", "disk", "ball", "dot", "round shape"],
    &["square", "box", "block", "tile"],
    &["triangle", "pyramid", "wedge"],
];
const SIZE_WORDS: [&[&str]; 2] = [
    &["small", "little", "tiny", "smaller"],
    &["large", "big", "huge", "larger", "bigger"],
];
/// Nouns for an object whose shape the caption leaves out.
const GENERIC_NOUNS: [&str; 4] = ["shape", "object", "thing", "one"];

fn pick<'a>(rng: &mut ChaCha8Rng, words: &[&'a str]) -> &'a str {
    words.choose(rng).copied().unwrap_or("")
}

/// "a" or "an" before `word`.
fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

fn plural(noun: &str) -> String {
    match noun {
        "box" => "boxes".into(),
        "one" => "ones".into(),
        n => format!("{n}s"),
    }
}

fn position_phrase(rng: &mut ChaCha8Rng, position: usize) -> String {
    let name = POSITIONS[position];
    match position {
        4 => pick(
            rng,
            &[
                "in the centre",
                "in the middle",
                "at the center",
                "in the center",
                "in the centre of the picture",
            ],
        )
        .into(),
        0 | 2 | 6 | 8 => {
            let (v, h) = name.split_once(' ').unwrap_or((name, ""));
            let v = if rng.gen_bool(0.5) {
                v
            } else if v == "top" {
                "upper"
            } else {
                "lower"
            };
            let tmpl = pick(
                rng,
                &[
                    "in the {} {}",
                    "at the {} {}",
                    "in the {} {} corner",
                    "near the {} {}",
                    "in the {} {} of the image",
                ],
            );
            tmpl.replacen("{}", v, 1).replacen("{}", h, 1)
        }
        1 | 7 => {
            let pre = pick(rng, &["at the", "near the", "along the", "at the very"]);
            format!("{pre} {name}")
        }
        _ => {
            let pre = pick(rng, &["on the", "at the", "to the"]);
            let side = pick(rng, &["", " side"]);
            format!("{pre} {name}{side}")
        }
    }
}

/// The noun phrase of a mention without its position ("a small red
/// circle", "a red one", "a circle"); `count` > 1 writes the plural ("two
/// red circles").
fn noun_phrase(rng: &mut ChaCha8Rng, m: &Mention, count: usize) -> String {
    let size = m.size.map(|s| pick(rng, &SIZE_WORDS[s][..3]));
    let colour = m.colour.map(|c| COLOURS[c].0);
    let noun = match m.shape {
        Some(s) => pick(rng, SHAPE_WORDS[s]),
        None if count > 1 => pick(rng, &GENERIC_NOUNS[..3]),
        None => pick(rng, &GENERIC_NOUNS),
    };
    let noun = if count > 1 { plural(noun) } else { noun.into() };
    // "a red one" reads well only with an adjective before it
    let noun = if noun == "one" && size.is_none() && colour.is_none() {
        "shape".to_string()
    } else {
        noun
    };
    let adjectives: Vec<&str> = [size, colour].into_iter().flatten().collect();
    let body = if adjectives.is_empty() {
        noun
    } else {
        format!("{} {noun}", adjectives.join(" "))
    };
    if count > 1 {
        let n = pick(rng, &["two", "2"]);
        return format!("{n} {body}");
    }
    match rng.gen_range(0..10) {
        0 => body, // no article: "red square"
        1 => format!("one {body}"),
        _ => format!("{} {body}", article(&body)),
    }
}

/// One object's phrase: its noun phrase and, when named, its position.
fn object_phrase(rng: &mut ChaCha8Rng, m: &Mention) -> String {
    let np = noun_phrase(rng, m, 1);
    let Some(p) = m.position else {
        return np;
    };
    let pos = position_phrase(rng, p);
    match rng.gen_range(0..3) {
        0 => format!("{pos} {np}"),
        _ => format!("{np} {pos}"),
    }
}

/// Which attributes a partial caption names, with their weights: colour
/// and shape most often, as people write them.
const PARTIAL_KINDS: [([bool; 4], u32); 9] = [
    // colour, shape, size, position
    ([true, true, false, false], 6),
    ([false, true, false, false], 3),
    ([true, false, false, false], 3),
    ([true, true, true, false], 3),
    ([true, true, false, true], 3),
    ([false, true, true, false], 1),
    ([false, true, false, true], 1),
    ([true, false, false, true], 1),
    ([true, true, true, true], 1),
];

fn partial_mention(o: &ShapeObject, kind: [bool; 4]) -> Mention {
    Mention {
        colour: kind[0].then_some(o.colour),
        shape: kind[1].then_some(o.shape),
        size: kind[2].then_some(o.size),
        position: kind[3].then_some(o.position),
    }
}

/// A caption of `objects`: with probability `partial` it leaves some
/// attributes out (the same ones for every object), else it names them all.
/// Returns the text and what it names.
pub fn write_caption(
    rng: &mut ChaCha8Rng,
    objects: &[ShapeObject],
    partial: f64,
) -> (String, CaptionSpec) {
    let kind = if partial > 0.0 && rng.gen_bool(partial.min(1.0)) {
        let total: u32 = PARTIAL_KINDS.iter().map(|k| k.1).sum();
        let mut r = rng.gen_range(0..total);
        let mut chosen = PARTIAL_KINDS[0].0;
        for (k, w) in PARTIAL_KINDS {
            if r < w {
                chosen = k;
                break;
            }
            r -= w;
        }
        chosen
    } else {
        [true; 4]
    };
    let mentions: Vec<Mention> = objects.iter().map(|o| partial_mention(o, kind)).collect();
    let full = kind == [true; 4];
    let body = match mentions.as_slice() {
        [a, b] if a == b => noun_phrase(rng, a, 2),
        ms => {
            let parts: Vec<String> = ms.iter().map(|m| object_phrase(rng, m)).collect();
            parts.join(pick(rng, &[" and ", " and ", ", and "]))
        }
    };
    let text = if full || rng.gen_bool(0.5) {
        match rng.gen_range(0..6) {
            0 | 1 => body,
            2 => format!("there is {body}"),
            3 => format!("this picture shows {body}"),
            4 => format!("an image of {body}"),
            _ => format!("a picture with {body}"),
        }
    } else {
        body
    };
    (text, CaptionSpec { objects: mentions })
}

/// Reads what a free-form caption names, with the words the captions use
/// (and simple plurals): colours, shapes and their synonyms, sizes,
/// positions, and "two" for a pair. Objects are split at "and" and where
/// a second colour or shape word begins another object.
/// Words it does not know are ignored; a caption that names nothing gives
/// an empty spec.
pub fn read_caption(caption: &str) -> CaptionSpec {
    let words = crate::text::tokenize(caption);
    let mut r = Reader::default();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let singular = crate::text::vocab::singulars(w);
        let is = |list: &[&str]| {
            list.contains(&w) || singular.iter().any(|s| list.contains(&s.as_str()))
        };
        // "round shape" is one circle word
        let next = words.get(i + 1).map(String::as_str);
        if w == "round" && matches!(next, Some("shape" | "shapes")) {
            r.set_shape(0);
            i += 2;
            continue;
        }
        if w == "and" {
            // "and" starts another object only when a colour or shape
            // follows ("the square is white and big" is one object)
            let known = |n: &str| {
                n == "round"
                    || COLOURS.iter().any(|c| c.0 == n)
                    || SHAPE_WORDS.iter().any(|l| l.contains(&n))
            };
            let another = words[i + 1..]
                .iter()
                .any(|n| known(n) || crate::text::vocab::singulars(n).iter().any(|s| known(s)));
            if another && !r.cur.is_empty() {
                r.flush();
            }
        } else if w == "two" || w == "2" {
            r.count = 2;
        } else if let Some(c) = COLOURS.iter().position(|c| is(&[c.0])) {
            if r.cur.colour.is_some_and(|have| have != c) {
                r.flush();
            }
            r.cur.colour = Some(c);
        } else if let Some(s) = SHAPE_WORDS.iter().position(|l| is(l)) {
            r.set_shape(s);
        } else if let Some(s) = SIZE_WORDS.iter().position(|l| is(l)) {
            r.cur.size = Some(s);
        } else if is(&["top", "upper"]) {
            r.vert = Some(0);
        } else if is(&["bottom", "lower"]) {
            r.vert = Some(2);
        } else if w == "left" {
            r.horiz = Some(0);
        } else if w == "right" {
            r.horiz = Some(2);
        } else if is(&["centre", "center", "middle"]) {
            r.centre = true;
        }
        i += 1;
    }
    r.flush();
    CaptionSpec { objects: r.objects }
}

/// [`read_caption`]'s state: the object being read and those done.
#[derive(Default)]
struct Reader {
    objects: Vec<Mention>,
    cur: Mention,
    /// 2 after "two"; 1 otherwise (0 is read as 1).
    count: usize,
    /// Row (0 top, 2 bottom) and column (0 left, 2 right) words.
    vert: Option<usize>,
    horiz: Option<usize>,
    centre: bool,
}

impl Reader {
    /// A shape word: a second one starts another object.
    fn set_shape(&mut self, s: usize) {
        if self.cur.shape.is_some() {
            self.flush();
        }
        self.cur.shape = Some(s);
    }

    /// Ends the current object (its position from the row and column
    /// words) and starts another.
    fn flush(&mut self) {
        self.cur.position = match (self.vert, self.horiz) {
            (Some(v), Some(h)) => Some(v * 3 + h),
            (Some(v), None) => Some(v * 3 + 1),
            (None, Some(h)) => Some(3 + h),
            (None, None) if self.centre => Some(4),
            _ => None,
        };
        if !self.cur.is_empty() {
            for _ in 0..self.count.max(1) {
                self.objects.push(self.cur);
            }
        }
        let objects = std::mem::take(&mut self.objects);
        *self = Self {
            objects,
            ..Self::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn obj(colour: usize, shape: usize, size: usize, position: usize) -> ShapeObject {
        ShapeObject {
            colour,
            shape,
            size,
            position,
            cx: 0.0,
            cy: 0.0,
            r: 1.0,
        }
    }

    #[test]
    fn reader_understands_what_people_type() {
        let one = |c, s| Mention {
            colour: c,
            shape: s,
            ..Default::default()
        };
        assert_eq!(
            read_caption("a green triangle").objects,
            vec![one(Some(1), Some(2))]
        );
        assert_eq!(
            read_caption("A Blue Square.").objects,
            vec![one(Some(2), Some(1))]
        );
        assert_eq!(read_caption("a triangle").objects, vec![one(None, Some(2))]);
        assert_eq!(read_caption("a red one").objects, vec![one(Some(0), None)]);
        assert_eq!(
            read_caption("two red circles").objects,
            vec![one(Some(0), Some(0)); 2]
        );
        let white = read_caption("the square is white and big");
        assert_eq!(white.objects.len(), 1);
        assert_eq!(white.objects[0].size, Some(1));
        let m = read_caption("a big purple box near the bottom left");
        assert_eq!(
            m.objects,
            vec![Mention {
                colour: Some(4),
                shape: Some(1),
                size: Some(1),
                position: Some(6),
            }]
        );
        let two = read_caption("a red circle and a small blue square at the top");
        assert_eq!(two.objects.len(), 2);
        assert_eq!(two.objects[1].position, Some(1));
        assert_eq!(two.objects[0].position, None);
        assert!(read_caption("hello world").objects.is_empty());
    }

    #[test]
    fn written_captions_read_back_as_their_spec() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for k in 0..2000 {
            let n = 1 + k % 2;
            let objects: Vec<ShapeObject> = (0..n)
                .map(|i| obj((k * 7 + i) % 8, (k + i) % 3, (k / 3) % 2, (k + 4 * i) % 9))
                .collect();
            let (text, spec) = write_caption(&mut rng, &objects, 0.7);
            assert!(spec.describes(&objects), "{text}");
            let read = read_caption(&text);
            let mut a = read.objects.clone();
            let mut b = spec.objects.clone();
            a.sort_by_key(|m| format!("{m:?}"));
            b.sort_by_key(|m| format!("{m:?}"));
            assert_eq!(a, b, "{text}");
        }
    }

    #[test]
    fn spec_matches_scenes() {
        let red_circle = obj(0, 0, 0, 0);
        let blue_square = obj(2, 1, 1, 8);
        let red = CaptionSpec {
            objects: vec![Mention {
                colour: Some(0),
                ..Default::default()
            }],
        };
        assert!(red.describes(&[red_circle]));
        assert!(!red.describes(&[blue_square]));
        assert!(!red.describes(&[red_circle, blue_square]));
        let both = CaptionSpec {
            objects: vec![Mention::full(&blue_square), Mention::full(&red_circle)],
        };
        assert!(both.describes(&[red_circle, blue_square]));
        assert!(both.is_full());
    }
}
