//! Builds the pause binary (a static C program) that the agent imports as its sandbox image.

fn main() {
    println!("cargo:rerun-if-changed=pause/pause.c");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let bin = out.join("pause");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = std::process::Command::new(&cc)
        .args(["-Os", "-static", "-s", "-o"])
        .arg(&bin)
        .arg("pause/pause.c")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building the pause binary with {cc} failed ({s}): a static libc is needed (Debian: libc6-dev)"),
        Err(e) => panic!("building the pause binary needs a C compiler ({cc}): {e}"),
    }
}
