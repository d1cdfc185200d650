use super::*;

#[test]
fn parses_the_scripts_result_line() {
    let out = "some noise\noriginal-protocol N=10 wall_s=0.512 identical=True\n";
    assert_eq!(
        parse_original_line(out),
        Some(OriginalLine::Finished {
            n: Some(10),
            wall_s: 0.512,
            identical: true
        })
    );
    assert_eq!(
        parse_original_line("original-protocol N=3 wall_s=12.000 identical=False"),
        Some(OriginalLine::Finished {
            n: Some(3),
            wall_s: 12.0,
            identical: false
        })
    );
    // The script this one replaced printed the same fields under another name.
    assert_eq!(
        parse_original_line("seed-protocol N=100 wall_s=4.234 identical=True\n"),
        Some(OriginalLine::Finished {
            n: Some(100),
            wall_s: 4.234,
            identical: true
        })
    );
    // An error runs to the end of the line.
    assert_eq!(
        parse_original_line(
            "original-protocol N=10 error=timeout (5 s): 3 of 11 processes unfinished\n"
        ),
        Some(OriginalLine::Failed(
            "timeout (5 s): 3 of 11 processes unfinished".into()
        ))
    );
    // The last result line counts.
    assert_eq!(
        parse_original_line(
            "original-protocol N=1 wall_s=9 identical=False\n\
             original-protocol N=1 wall_s=1 identical=True\n"
        ),
        Some(OriginalLine::Finished {
            n: Some(1),
            wall_s: 1.0,
            identical: true
        })
    );
    for junk in [
        "",
        "Traceback (most recent call last):\n  ImportError: pika",
        "original-protocol N=10 identical=True",
        "original-protocol N=10 wall_s=abc identical=True",
        "original-protocol N=10 wall_s=1.0 identical=maybe",
        "original-protocolN=10 wall_s=1.0 identical=True",
        "original-protocol N=10 my_wall_s=1.0 identical=True",
    ] {
        assert_eq!(parse_original_line(junk), None, "{junk:?}");
    }
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "sync-run-bench-{tag}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn touch(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
        p
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn finds_the_original_script_from_a_clone() {
    let d = Scratch::new("find");
    let rel = Path::new(ORIGINAL_SCRIPT);
    let repo = d.0.join("clone");
    let script = d.touch("clone/bench/original_protocol.py");
    let exe = d.touch("clone/target/release/sync-run");
    let elsewhere = d.0.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let find = |cwd: &Path, exe: &Path| find_original_script(rel, Some(cwd), Some(exe), None);

    // From the clone's root.
    assert_eq!(
        find(&repo, Path::new("/nonexistent/sync-run")),
        Some(repo.join(rel))
    );
    // From anywhere, through the binary's place in target/.
    let found = find(&elsewhere, &exe).unwrap();
    assert_eq!(
        found.canonicalize().unwrap(),
        script.canonicalize().unwrap()
    );
    let exe2 = d.touch("clone/target/x86_64-unknown-linux-gnu/release/sync-run");
    assert!(find(&elsewhere, &exe2).is_some());
    let test_exe = d.touch("clone/target/debug/deps/sync_run-0123456789abcdef");
    assert!(find(&elsewhere, &test_exe).is_some());
    // The current directory comes first.
    let other = d.touch("other/bench/original_protocol.py");
    assert_eq!(find(&d.0.join("other"), &exe), Some(other));
    // A binary outside any target/ (installed): the tree it was built from, if any.
    let installed = d.touch("bin/sync-run");
    assert_eq!(find(&elsewhere, &installed), None);
    assert_eq!(
        find_original_script(rel, Some(&elsewhere), Some(&installed), Some(&repo)),
        Some(repo.join(rel))
    );
    assert_eq!(find_original_script(rel, None, None, None), None);
    // A directory of that name is not the script.
    let dir = d.0.join("dirclone");
    std::fs::create_dir_all(dir.join(rel)).unwrap();
    assert_eq!(find(&dir, Path::new("/nonexistent/sync-run")), None);
}

#[test]
fn the_default_script_is_this_repositorys() {
    // Tests run from the package root (cargo sets the current directory), and the
    // test binary sits in target/debug/deps: either way it is found.
    let p = default_original_script();
    assert!(p.is_file(), "{}", p.display());
    assert!(p.ends_with(ORIGINAL_SCRIPT));
}
