//! The model-family registry: every family resolves its presets, takes
//! `--set` on any field (read back from the config it would save), refuses
//! unknown keys with the list of valid ones, and maps or refuses each shared
//! command-line flag.

use t2i::family::{apply_sets, families, family};

#[test]
fn every_family_takes_set_and_reads_it_back() {
    for f in families() {
        for preset in f.presets() {
            let mut t = f.config(preset).unwrap();
            // the learning rate exists in every family, under its own key
            let keys = f.flag_keys("lr");
            assert!(!keys.is_empty(), "{}: no lr key", f.name());
            let sets: Vec<String> = keys.iter().map(|k| format!("{k}=0.0123")).collect();
            apply_sets(&mut t, &sets).unwrap();
            // the data set every family needs, so that the config validates
            let root = "data.root=\"/some/folder\"".to_string();
            apply_sets(&mut t, &[root]).unwrap();
            // the files a family builds on
            match f.name() {
                "attngan" => apply_sets(&mut t, &["damsm=\"d.safetensors\"".to_string()]),
                "styleT2I" => apply_sets(&mut t, &["backbone=\"b.safetensors\"".to_string()]),
                _ => Ok(()),
            }
            .unwrap();
            let checked = f
                .check(&t)
                .unwrap_or_else(|e| panic!("{} {preset}: {e}", f.name()));
            // through the TOML text a run folder saves
            let saved: toml::Table = toml::from_str(&toml::to_string(&checked).unwrap()).unwrap();
            for k in keys {
                let mut v = &toml::Value::Table(saved.clone());
                for part in k.split('.') {
                    v = &v[part];
                }
                assert_eq!(v.as_float(), Some(0.0123), "{} {preset} {k}", f.name());
            }
        }
    }
}

#[test]
fn unknown_keys_list_the_valid_ones_and_bad_values_are_refused() {
    for f in families() {
        let mut t = f.config(f.presets()[0]).unwrap();
        let e = apply_sets(&mut t, &["no_such_field=1".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown config field 'no_such_field'") && e.contains("data"),
            "{}: {e}",
            f.name()
        );
        let e = apply_sets(&mut t, &["data.nope=1".to_string()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("root") && e.contains("name"), "{e}");
        // a value of the wrong type fails the typed check
        let mut t = f.config(f.presets()[0]).unwrap();
        apply_sets(&mut t, &[format!("{}=\"fast\"", f.flag_keys("lr")[0])]).unwrap();
        assert!(f.check(&t).is_err(), "{}", f.name());
    }
    assert!(family("no-such-model")
        .err()
        .unwrap()
        .to_string()
        .contains("gan-int-cls"));
}

#[test]
fn shared_flags_map_to_keys_or_are_refused() {
    let g = family("gan-int-cls").unwrap();
    assert_eq!(g.flag_keys("ngf"), ["ngf"]);
    assert!(family("damsm").unwrap().flag_keys("ngf").is_empty());
    assert_eq!(
        family("stackgan").unwrap().flag_keys("lr"),
        ["lr_g", "lr_d"]
    );
    for f in families() {
        let t = f.config(f.presets()[0]).unwrap();
        // every key a flag names exists in the family's config
        for flag in [
            "lr",
            "batch_size",
            "ngf",
            "ndf",
            "image_size",
            "variant",
            "data",
            "data_root",
            "train_size",
            "max_objects",
            "text_encoder",
            "text_steps",
            "text_hard",
            "style_steps",
            "stage",
            "stage1",
            "damsm",
            "image_init",
            "freeze_image",
            "word_init",
        ] {
            for k in f.flag_keys(flag) {
                let mut v = Some(&toml::Value::Table(t.clone()));
                for part in k.split('.') {
                    v = v.and_then(|v| v.get(part));
                }
                assert!(v.is_some(), "{} --{flag} -> {k} missing", f.name());
            }
        }
    }
}

/// Every family trains through `train::run::train` with a `--set` and a
/// shared flag, and the run's own `config.toml` holds both; a resume that
/// changes a setting is refused and writes nothing.
#[test]
fn every_family_trains_with_set_and_records_it_in_config_toml() {
    use t2i::data::shapes::{export_cub_layout, Shapes, ShapesConfig};
    use t2i::train::run::{train, LoopOptions, StopFlag, TrainRequest};
    let tmp = tempfile::tempdir().unwrap();
    let cub = tmp.path().join("cub");
    let shapes = Shapes::new(ShapesConfig {
        image_size: 64,
        train_size: 40,
        test_size: 10,
        ..Default::default()
    })
    .unwrap();
    export_cub_layout(&shapes, &cub).unwrap();
    let cub = cub.display().to_string();
    let run = |model: &str, out: &str, sets: &[String], resume: bool| {
        let req = TrainRequest {
            model: Some(model.to_string()),
            preset: None,
            flags: vec![("batch_size", "4".to_string())],
            sets: sets.to_vec(),
            out: tmp.path().join(out),
            resume,
            seed: None,
            device: tch::Device::Cpu,
            cache: tmp.path().join("cache"),
            schedule: LoopOptions {
                steps: 1,
                max_seconds: 0,
                log_every: 1,
                sample_every: 0,
                checkpoint_every: 0,
                keep_checkpoints: 3,
                progress: false,
                precision: Default::default(),
            },
            eval_samples: 0,
        };
        train(&req, &StopFlag::default())
    };
    let data_cub = format!("data.root={cub:?}");
    let shapes_small = "data.train_size=60".to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "gan-int-cls",
            vec![
                shapes_small.clone(),
                "text.steps=2".into(),
                "style_steps=1".into(),
            ],
        ),
        ("stackgan", vec![shapes_small, "text.steps=2".into()]),
        ("damsm", vec![data_cub.clone(), "eval_every=0".into()]),
        ("classifier", vec![data_cub.clone()]),
        (
            "char-cnn-rnn",
            vec![data_cub.clone(), "eval_every=0".into()],
        ),
    ];
    let mut runs = Vec::new();
    for (model, mut sets) in cases {
        let f = family(model).unwrap();
        let key = f.flag_keys("lr")[0];
        sets.push(format!("{key}=0.000123"));
        let out = format!("run-{model}");
        run(model, &out, &sets, false).unwrap_or_else(|e| panic!("{model}: {e}"));
        runs.push((model, out, key));
    }
    // AttnGAN on the DAMSM just trained
    let damsm = tmp.path().join("run-damsm/checkpoints/last.safetensors");
    let sets = vec![
        data_cub,
        format!("damsm={:?}", damsm.display().to_string()),
        "lr_g=0.000123".into(),
    ];
    run("attngan", "run-attngan", &sets, false).unwrap();
    runs.push(("attngan", "run-attngan".into(), "lr_g"));
    for (model, out, key) in runs {
        let text = std::fs::read_to_string(tmp.path().join(&out).join("config.toml")).unwrap();
        let saved: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(saved["model"].as_str(), Some(model));
        let config = &saved["config"];
        assert_eq!(config[key].as_float(), Some(0.000123), "{model}: {text}");
        let batch = family(model).unwrap().flag_keys("batch_size")[0];
        assert_eq!(config[batch].as_integer(), Some(4), "{model}");
        assert!(tmp
            .path()
            .join(&out)
            .join("checkpoints/last.safetensors")
            .is_file());
        // a changed setting on resume is refused, the config untouched
        let e = run(model, &out, &[format!("{key}=0.5")], true)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--resume cannot change"), "{model}: {e}");
        let after = std::fs::read_to_string(tmp.path().join(&out).join("config.toml")).unwrap();
        assert_eq!(after, text);
    }
}
