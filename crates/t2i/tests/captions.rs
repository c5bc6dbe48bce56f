//! Captions as people write them: the shapes captions' partial
//! descriptions, the free-form caption file, and `eval --captions` scoring
//! only what a caption names (checked with generators whose drawings are
//! known).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::path::Path;
use t2i::data::shapes::{
    read_caption, render, ShapeObject, Shapes, ShapesConfig, Split, COLOURS, POSITIONS, SHAPES,
    SIZE_FRACTIONS,
};
use t2i::error::Result;
use t2i::eval::captions::{read_caption_file, score_captions};
use t2i::family::{Controls, Generated, Generator};
use t2i::text::tokenize;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/free_form_captions.txt"
);

#[test]
fn free_form_file_is_not_the_templates() {
    let captions = read_caption_file(Path::new(FILE)).unwrap();
    assert_eq!(captions.len(), 50);
    let mut written = HashSet::new();
    for max_objects in [1, 2] {
        let ds = Shapes::new(ShapesConfig {
            max_objects,
            ..Default::default()
        })
        .unwrap();
        for i in 0..ds.len(Split::Train) {
            for c in ds.sample(Split::Train, i).captions {
                written.insert(tokenize(&c));
            }
        }
    }
    let produced: Vec<&String> = captions
        .iter()
        .filter(|c| written.contains(&tokenize(c.as_str())))
        .collect();
    assert!(produced.is_empty(), "template captions: {produced:?}");
    for c in &captions {
        let spec = read_caption(c);
        assert_eq!(spec.objects.len(), 1, "'{c}' reads as {spec:?}");
    }
    // the short captions people type are among the training captions
    let short = read_caption_file(&Path::new(FILE).with_file_name("short_captions.txt")).unwrap();
    for c in &short {
        assert!(written.contains(&tokenize(c)), "no training caption '{c}'");
    }
    // and where two objects share what a caption names, it counts them
    assert!(written
        .iter()
        .any(|t| t.first().is_some_and(|w| w == "two") && t.len() == 3));
}

/// Draws what each caption names, at the named cell, with the attributes it
/// leaves out picked at random; or, with `fixed`, always that object.
struct Oracle {
    fixed: Option<ShapeObject>,
}

impl Generator for Oracle {
    fn family(&self) -> &'static str {
        "oracle"
    }
    fn image_size(&self) -> i64 {
        32
    }
    fn controls(&self) -> Controls {
        Controls::default()
    }
    fn unknown_words(&self, _caption: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn generate(&self, captions: &[&str], seed: u64) -> Result<Generated> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let size = 32u32;
        let mut px = Vec::new();
        for c in captions {
            let spec = read_caption(c);
            let objects: Vec<ShapeObject> = spec
                .objects
                .iter()
                .map(|m| {
                    let position = m
                        .position
                        .unwrap_or_else(|| rng.gen_range(0..POSITIONS.len()));
                    let size_i = m.size.unwrap_or_else(|| rng.gen_range(0..2));
                    let cell = size as f32 / 3.0;
                    let r = (SIZE_FRACTIONS[size_i] * size as f32 / 2.0).round();
                    let clamp = |v: f32| v.clamp(r + 1.0, size as f32 - r - 1.0);
                    ShapeObject {
                        colour: m.colour.unwrap_or_else(|| rng.gen_range(0..COLOURS.len())),
                        shape: m.shape.unwrap_or_else(|| rng.gen_range(0..SHAPES.len())),
                        size: size_i,
                        position,
                        cx: clamp(((position % 3) as f32 + 0.5) * cell),
                        cy: clamp(((position / 3) as f32 + 0.5) * cell),
                        r,
                    }
                })
                .collect();
            let objects = self.fixed.map(|o| vec![o]).unwrap_or(objects);
            px.push(render(size, &objects, 0, false));
        }
        let refs: Vec<&[u8]> = px.iter().map(Vec::as_slice).collect();
        Ok(Generated {
            images: t2i::imageio::images_to_tensor(&refs, size),
            first_stage: None,
            drawn_as: None,
            corrected: None,
        })
    }
}

fn shapes32() -> Shapes {
    Shapes::new(ShapesConfig {
        image_size: 32,
        test_size: 40,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn caption_scores_count_only_what_is_named() {
    let captions: Vec<String> = [
        "A green triangle.",
        "a triangle",
        "a red one",
        "a small blue square in the top left",
        "hello world",
    ]
    .map(String::from)
    .to_vec();
    let report = score_captions(&Oracle { fixed: None }, &shapes32(), &captions, 40, 1).unwrap();
    assert_eq!(report.captions.len(), 4);
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    for c in &report.captions {
        assert!(c.all_named > 0.97, "{c:?}");
        assert!(c.template.unwrap() > 0.97, "{c:?}");
        assert!(c.template_samples > 0, "{c:?}");
    }
    assert_eq!(report.captions[0].names, "colour+shape");
    assert_eq!(report.captions[2].shape, None);
    assert_eq!(report.within_10_points, 4);

    // a generator that always draws a large red circle in the centre
    let red = ShapeObject {
        colour: 0,
        shape: 0,
        size: 1,
        position: 4,
        cx: 16.0,
        cy: 16.0,
        r: 8.0,
    };
    let report =
        score_captions(&Oracle { fixed: Some(red) }, &shapes32(), &captions, 20, 1).unwrap();
    let by = |c: &str| {
        report
            .captions
            .iter()
            .find(|s| s.caption == c)
            .unwrap()
            .clone()
    };
    assert_eq!(by("a red one").all_named, 1.0);
    assert_eq!(by("a triangle").all_named, 0.0);
    let blue = by("a small blue square in the top left");
    assert_eq!(blue.all_named, 0.0);
    assert_eq!(
        (blue.colour, blue.shape, blue.size, blue.position),
        (Some(0.0), Some(0.0), Some(0.0), Some(0.0))
    );
    // the same requests in template captions fare the same
    assert_eq!(by("a red one").template, Some(1.0));
    assert_eq!(by("a triangle").template, Some(0.0));
}
