use super::*;

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &p, out);
            } else {
                out.push(format!("{rel}={}", std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A mount holding `old` files, with `new` files staged as restic would put them.
fn mount(old: &[(&str, &str)], new: &[(&str, &str)]) -> (tempfile::TempDir, Target) {
    let tmp = tempfile::tempdir().unwrap();
    let t = Target {
        dir: tmp.path().join("volumes/app/data"),
    };
    std::fs::create_dir_all(&t.dir).unwrap();
    for (p, c) in old {
        let p = t.dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    assert_eq!(t.prepare().unwrap(), None);
    let root = t.staged_root();
    std::fs::create_dir_all(&root).unwrap();
    for (p, c) in new {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    (tmp, t)
}

#[test]
fn targets_are_mounts_under_volumes() {
    assert!(Target::new("/volumes/app/data").is_ok());
    for bad in [
        "/etc",
        "/volumes/../etc",
        "/volumes/a/../../etc",
        "volumes/x",
    ] {
        let e = Target::new(bad).unwrap_err().to_string();
        assert!(e.contains("only mounts under /volumes/"), "{bad}: {e}");
    }
    let t = Target::new("/volumes/app/data/").unwrap();
    assert_eq!(
        t.staged_root(),
        PathBuf::from("/volumes/app/data/.stackshot-restore/volumes/app/data")
    );
}

#[test]
fn swap_then_commit_leaves_exactly_the_restored_files() {
    let (_tmp, t) = mount(
        &[
            ("a.txt", "old a"),
            ("sub/b.txt", "old b"),
            ("gone.txt", "x"),
        ],
        &[("a.txt", "new a"), ("sub/c.txt", "new c")],
    );
    swap(&t).unwrap().commit().unwrap();
    assert_eq!(tree(&t.dir), ["a.txt=new a", "sub/", "sub/c.txt=new c"]);
}

#[test]
fn undo_puts_every_old_entry_back() {
    let old = [("a.txt", "old a"), ("sub/b.txt", "old b")];
    let (_tmp, t) = mount(&old, &[("a.txt", "new a"), ("n.txt", "n")]);
    let before: Vec<String> = vec![
        "a.txt=old a".into(),
        "sub/".into(),
        "sub/b.txt=old b".into(),
    ];
    let mut s = swap(&t).unwrap();
    s.undo().unwrap();
    t.discard().unwrap();
    assert_eq!(tree(&t.dir), before);
}

#[test]
fn a_restore_that_left_nothing_changes_nothing() {
    let (_tmp, t) = mount(&[("a.txt", "old a")], &[]);
    std::fs::remove_dir_all(t.staged_root()).unwrap();
    let e = format!("{:#}", swap(&t).unwrap_err());
    assert!(e.contains("the restore left nothing"), "{e}");
    t.discard().unwrap();
    assert_eq!(tree(&t.dir), ["a.txt=old a"]);
}

#[test]
fn prepare_removes_what_an_interrupted_restore_left() {
    let (_tmp, t) = mount(&[("a.txt", "old a")], &[("half.bin", "…")]);
    std::fs::create_dir(t.dir.join(OLD)).unwrap();
    let said = t.prepare().unwrap().expect("a line about the leftovers");
    assert!(
        said.contains(".stackshot-restore and .stackshot-old"),
        "{said}"
    );
    assert_eq!(tree(&t.dir), [".stackshot-restore/", "a.txt=old a"]);
}
