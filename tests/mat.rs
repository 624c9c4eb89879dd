//! The MATLAB Level-5 writer: the bytes follow the format (header, tags, 8-byte padding,
//! array flags), bad input gives clear errors, and SciPy's `loadmat` reads every kind of
//! variable back exactly (`scripts/check_mat.py`).

use std::path::PathBuf;
use std::process::Command;

use neurode::mat::{encode_mat, write_mat, MatError, MatValue};

mod common;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn var(name: &str, value: MatValue) -> (String, MatValue) {
    (name.to_string(), value)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// One sub-element of a variable: its data type and data (padding stripped).
#[derive(Debug)]
struct Sub {
    mi: u32,
    data: Vec<u8>,
}

/// One variable: the `miMATRIX` element's sub-elements.
fn parse(bytes: &[u8]) -> Vec<Vec<Sub>> {
    let mut vars = Vec::new();
    let mut at = 128;
    while at < bytes.len() {
        assert_eq!(u32_at(bytes, at), 14, "element at {at} is not miMATRIX");
        let n = u32_at(bytes, at + 4) as usize;
        assert_eq!(
            n % 8,
            0,
            "miMATRIX length {n} at {at} is not a multiple of 8"
        );
        let end = at + 8 + n;
        assert!(end <= bytes.len(), "element at {at} runs past the end");
        let mut subs = Vec::new();
        let mut s = at + 8;
        while s < end {
            let tag = u32_at(bytes, s);
            if tag >> 16 != 0 {
                // Small data element: 2 bytes length, 2 bytes type, 4 bytes data.
                let len = (tag >> 16) as usize;
                assert!(len <= 4, "small element of {len} bytes");
                assert!(bytes[s + 4 + len..s + 8].iter().all(|&b| b == 0));
                subs.push(Sub {
                    mi: tag & 0xffff,
                    data: bytes[s + 4..s + 4 + len].to_vec(),
                });
                s += 8;
            } else {
                let len = u32_at(bytes, s + 4) as usize;
                let padded = len.div_ceil(8) * 8;
                assert!(
                    bytes[s + 8 + len..s + 8 + padded].iter().all(|&b| b == 0),
                    "padding of the element at {s} is not zero"
                );
                subs.push(Sub {
                    mi: tag,
                    data: bytes[s + 8..s + 8 + len].to_vec(),
                });
                s += 8 + padded;
            }
        }
        assert_eq!(s, end, "sub-elements overrun the miMATRIX at {at}");
        vars.push(subs);
        at = end;
    }
    assert_eq!(at, bytes.len());
    vars
}

fn dims_of(sub: &Sub) -> Vec<i32> {
    assert_eq!(sub.mi, 5, "dimensions are not miINT32");
    sub.data
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn header_is_128_bytes_with_version_and_endian_indicator() {
    let bytes = encode_mat(&[]).unwrap();
    assert_eq!(bytes.len(), 128);
    assert!(bytes.starts_with(b"MATLAB 5.0 MAT-file, Platform: neurode, Created on: "));
    let text = std::str::from_utf8(&bytes[..116]).unwrap();
    assert!(text.is_ascii() && text.ends_with(' '), "{text:?}");
    assert_eq!(
        &bytes[124..126],
        &[0x00, 0x01],
        "version 0x0100, little-endian"
    );
    assert_eq!(&bytes[126..128], b"IM");
}

#[test]
fn elements_are_tagged_flagged_and_padded_to_8_bytes() {
    let vars = vec![
        var("x", MatValue::scalar(1.5)),
        var(
            "m",
            MatValue::matrix_row_major(3, 2, &[1., 2., 3., 4., 5., 6.]),
        ),
        var("flags", MatValue::logical_column(vec![true, false, true])),
        var("e", MatValue::matrix_col_major(0, 0, vec![])),
        var("label", MatValue::text("abc")),
        var("long_name_of_nine_plus", MatValue::row(vec![0.25; 5])),
    ];
    let bytes = encode_mat(&vars).unwrap();
    assert_eq!(bytes.len() % 8, 0);
    let parsed = parse(&bytes);
    assert_eq!(parsed.len(), vars.len());
    for ((name, _), subs) in vars.iter().zip(&parsed) {
        assert_eq!(subs.len(), 4, "{name}: flags, dims, name, real part");
        assert_eq!(subs[0].mi, 6, "{name}: array flags are miUINT32");
        assert_eq!(subs[0].data.len(), 8);
        assert_eq!(subs[2].mi, 1, "{name}: the name is miINT8");
        assert_eq!(subs[2].data, name.as_bytes());
    }
    let class = |i: usize| parsed[i][0].data[0];
    let flags = |i: usize| parsed[i][0].data[1];
    // Scalar: mxDOUBLE_CLASS, 1 x 1, miDOUBLE.
    assert_eq!((class(0), flags(0)), (6, 0));
    assert_eq!(dims_of(&parsed[0][1]), [1, 1]);
    assert_eq!(parsed[0][3].mi, 9);
    assert_eq!(parsed[0][3].data, 1.5f64.to_le_bytes());
    // The row-major 3 x 2 matrix [1 2; 3 4; 5 6] is stored column-major: 1 3 5 2 4 6.
    assert_eq!(dims_of(&parsed[1][1]), [3, 2]);
    let m: Vec<f64> = parsed[1][3]
        .data
        .chunks(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(m, [1., 3., 5., 2., 4., 6.]);
    // Logical: mxUINT8_CLASS with the logical flag, miUINT8 data.
    assert_eq!((class(2), flags(2)), (9, 0x02));
    assert_eq!(dims_of(&parsed[2][1]), [3, 1]);
    assert_eq!(
        (parsed[2][3].mi, parsed[2][3].data.clone()),
        (2, vec![1, 0, 1])
    );
    // Empty 0 x 0 double: an empty miDOUBLE element.
    assert_eq!(dims_of(&parsed[3][1]), [0, 0]);
    assert_eq!((parsed[3][3].mi, parsed[3][3].data.len()), (9, 0));
    // Char: mxCHAR_CLASS, 1 x 3, UTF-16 code units.
    assert_eq!((class(4), flags(4)), (4, 0));
    assert_eq!(dims_of(&parsed[4][1]), [1, 3]);
    assert_eq!(parsed[4][3].mi, 17);
    assert_eq!(parsed[4][3].data, [b'a', 0, b'b', 0, b'c', 0]);
    assert_eq!(dims_of(&parsed[5][1]), [1, 5]);
}

#[test]
fn bad_names_are_refused_saying_which() {
    let long = "a".repeat(64);
    for name in ["", "1x", "_x", "a-b", "a b", "größe", long.as_str()] {
        let err = encode_mat(&[var(name, MatValue::scalar(1.0))]).unwrap_err();
        assert!(
            matches!(err, MatError::InvalidName { .. }),
            "{name:?}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{name:?}")) && msg.contains("letter"),
            "{msg}"
        );
    }
    // The longest and the most varied valid names are fine.
    let ok = "a".repeat(63);
    encode_mat(&[
        var(&ok, MatValue::scalar(1.0)),
        var("Z_9z", MatValue::scalar(2.0)),
    ])
    .unwrap();
}

#[test]
fn shapes_not_matching_the_data_are_refused() {
    let err = encode_mat(&[var("w", MatValue::matrix_col_major(2, 3, vec![0.0; 5]))]).unwrap_err();
    assert!(
        matches!(err, MatError::DimsMismatch { len: 5, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("\"w\"") && err.to_string().contains("[2, 3]"),
        "{err}"
    );
    // A row-major matrix of the wrong length is not transposed but refused.
    let err = encode_mat(&[var("r", MatValue::matrix_row_major(2, 2, &[1.0; 3]))]).unwrap_err();
    assert!(
        matches!(err, MatError::DimsMismatch { len: 3, .. }),
        "{err}"
    );
    let bad = MatValue::Logical {
        dims: vec![2, 2],
        data: vec![true; 3],
    };
    let err = encode_mat(&[var("l", bad)]).unwrap_err();
    assert!(matches!(err, MatError::DimsMismatch { .. }), "{err}");
    // A product that overflows is a mismatch, not a panic.
    let huge = MatValue::Double {
        dims: vec![i32::MAX as usize; 3],
        data: vec![],
    };
    let err = encode_mat(&[var("h", huge)]).unwrap_err();
    assert!(matches!(err, MatError::DimsMismatch { .. }), "{err}");
    let err =
        encode_mat(&[var("big", MatValue::matrix_col_major(1 << 31, 0, vec![]))]).unwrap_err();
    assert!(matches!(err, MatError::TooLarge { .. }), "{err}");
}

#[test]
fn fewer_than_two_dims_are_refused() {
    for dims in [vec![3], vec![]] {
        let len = dims.iter().product();
        let v = MatValue::Double {
            dims: dims.clone(),
            data: vec![0.0; len],
        };
        let err = encode_mat(&[var("v", v)]).unwrap_err();
        assert!(
            matches!(err, MatError::TooFewDims { .. }),
            "{dims:?}: {err}"
        );
        assert!(err.to_string().contains("[1, n]"), "{err}");
    }
    let v = MatValue::Logical {
        dims: vec![2],
        data: vec![true; 2],
    };
    assert!(matches!(
        encode_mat(&[var("b", v)]),
        Err(MatError::TooFewDims { .. })
    ));
}

#[test]
fn duplicate_names_and_unreadable_text_are_refused() {
    let err = encode_mat(&[
        var("a", MatValue::scalar(1.0)),
        var("b", MatValue::scalar(2.0)),
        var("a", MatValue::text("again")),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, MatError::DuplicateName { name } if name == "a"),
        "{err}"
    );
    let err = encode_mat(&[var("s", MatValue::text("ok then 🙂"))]).unwrap_err();
    assert!(matches!(err, MatError::Text { ch: '🙂', .. }), "{err}");
}

#[test]
fn write_errors_name_the_file() {
    let dir = tmp("missing").join("no-such-dir");
    let path = dir.join("x.mat");
    let err = write_mat(&path, &[var("x", MatValue::scalar(1.0))]).unwrap_err();
    assert!(matches!(err, MatError::Io(_)), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

/// SciPy's `loadmat` reads every kind of variable back with the right shape, class and
/// bit-identical values. Skips (saying why) where Python with SciPy is missing, but fails in
/// CI, whose `.ci/run` installs it.
#[test]
fn scipy_reads_every_variable_back_exactly() {
    if !common::python_has("scipy.io, numpy") {
        return;
    }
    let dir = tmp("scipy");
    let long = format!(
        "v{}",
        "_0123456789".repeat(6).chars().take(62).collect::<String>()
    );
    assert_eq!(long.len(), 63);
    let m_col_major = vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0];
    let vars = vec![
        var("scalar", MatValue::scalar(std::f64::consts::PI)),
        // [1 2; 3 4; 5 6], given row-major.
        var(
            "m",
            MatValue::matrix_row_major(3, 2, &[1., 2., 3., 4., 5., 6.]),
        ),
        var("col", MatValue::column(vec![0.1, -2.5e-300, 1e300])),
        var(
            "row",
            MatValue::row(vec![-0.0, 1.0 / 3.0, f64::MIN_POSITIVE, 7.0]),
        ),
        var(
            "mask",
            MatValue::logical_column(vec![true, false, false, true, true]),
        ),
        var("empty", MatValue::matrix_col_major(0, 0, vec![])),
        var("label", MatValue::text("tau = 20 ms, τ_syn 5 µs")),
        var("note", MatValue::text("x")),
        var("blank", MatValue::text("")),
        var(&long, MatValue::scalar(63.0)),
    ];
    let expect = serde_json::json!({
        "scalar": {"kind": "double", "shape": [1, 1], "data_col_major": [std::f64::consts::PI]},
        "m": {"kind": "double", "shape": [3, 2], "data_col_major": m_col_major},
        "col": {"kind": "double", "shape": [3, 1], "data_col_major": [0.1, -2.5e-300, 1e300]},
        "row": {"kind": "double", "shape": [1, 4],
                "data_col_major": [-0.0, 1.0 / 3.0, f64::MIN_POSITIVE, 7.0]},
        "mask": {"kind": "logical", "shape": [5, 1],
                 "data_col_major": [true, false, false, true, true]},
        "empty": {"kind": "double", "shape": [0, 0], "data_col_major": []},
        "label": {"kind": "char", "text": "tau = 20 ms, τ_syn 5 µs"},
        "note": {"kind": "char", "text": "x"},
        "blank": {"kind": "char", "text": ""},
        long.clone(): {"kind": "double", "shape": [1, 1], "data_col_major": [63.0]},
    });
    let mat = dir.join("net.mat");
    let json = dir.join("expect.json");
    write_mat(&mat, &vars).unwrap();
    std::fs::write(&json, serde_json::to_string_pretty(&expect).unwrap()).unwrap();
    let out = Command::new("python3")
        .args([
            "scripts/check_mat.py",
            mat.to_str().unwrap(),
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "SciPy disagrees with the MAT-file");
    assert!(
        text.contains(&format!("all {} variables match", vars.len())),
        "{text}"
    );

    // The checker itself catches a wrong value (the matrix left row-major), a logical
    // read as double, and a variable extra or missing.
    let mut wrong_value = expect.clone();
    wrong_value["m"]["data_col_major"] = serde_json::json!([1., 2., 3., 4., 5., 6.]);
    let mut wrong_class = expect.clone();
    wrong_class["mask"]["kind"] = serde_json::json!("double");
    let mut extra = expect.clone();
    extra.as_object_mut().unwrap().remove("note");
    let mut missing = expect.clone();
    missing["absent"] = serde_json::json!({"kind": "char", "text": "x"});
    for (what, wrong) in [
        ("a transposed matrix", wrong_value),
        ("a logical as double", wrong_class),
        ("an extra variable", extra),
        ("a missing variable", missing),
    ] {
        std::fs::write(&json, serde_json::to_string(&wrong).unwrap()).unwrap();
        let out = Command::new("python3")
            .args([
                "scripts/check_mat.py",
                mat.to_str().unwrap(),
                json.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "check_mat.py accepted {what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
