//! A MATLAB v5 file holding double row vectors (uncompressed, little
//! endian), as Oxford-102's `imagelabels.mat` and `setid.mat` are; shared by
//! the loader tests and the fuzz corpus (fuzz/examples/seeds.rs).

pub fn mat_file(arrays: &[(&str, Vec<f64>)]) -> Vec<u8> {
    let mut out = vec![b' '; 116];
    out[..20].copy_from_slice(b"MATLAB 5.0 MAT-file,");
    out.extend_from_slice(&[0u8; 8]); // subsystem offset
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    let tag = |b: &mut Vec<u8>, ty: u32, n: u32| {
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
    };
    let pad = |b: &mut Vec<u8>| b.resize(b.len().div_ceil(8) * 8, 0);
    for (name, data) in arrays {
        let mut body = Vec::new();
        tag(&mut body, 6, 8); // array flags: mxDOUBLE_CLASS
        body.extend_from_slice(&6u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        tag(&mut body, 5, 8); // dimensions 1 x n
        body.extend_from_slice(&1i32.to_le_bytes());
        body.extend_from_slice(&(data.len() as i32).to_le_bytes());
        tag(&mut body, 1, name.len() as u32);
        body.extend_from_slice(name.as_bytes());
        pad(&mut body);
        tag(&mut body, 9, (8 * data.len()) as u32);
        for x in data {
            body.extend_from_slice(&x.to_le_bytes());
        }
        pad(&mut body);
        tag(&mut out, 14, body.len() as u32); // miMATRIX
        out.extend_from_slice(&body);
    }
    out
}
