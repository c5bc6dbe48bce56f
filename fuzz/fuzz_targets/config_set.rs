//! `--set KEY=VALUE` and config validation: each line of the input is one
//! setting applied to a family's preset (the first byte picks the family and
//! preset), then the family's check reads the table back as its typed config.
//! Also a whole input read as a `config.toml`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use t2i::family::{apply_sets, families};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let fams = families();
    let fam = fams[pick as usize % fams.len()];
    let presets = fam.presets();
    let preset = presets[(pick as usize / fams.len()) % presets.len()];
    let text = String::from_utf8_lossy(rest);
    let sets: Vec<String> = text.lines().map(str::to_string).collect();
    let mut table = fam.config(preset).expect("a family's own preset");
    if apply_sets(&mut table, &sets).is_ok() {
        let _ = fam.check(&table);
    }
    if let Ok(table) = text.parse::<toml::Table>() {
        let _ = fam.check(&table);
    }
});
