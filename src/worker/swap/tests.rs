use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;

use super::*;

/// Every entry under `dir` (`path/` for directories, `path=content` for
/// files), sorted, with the mode of `dir` itself first.
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
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
    out.insert(0, format!("mode {mode:o}"));
    out
}

fn write_all(root: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
}

/// The files a test writes or expects, as (path, content) pairs.
type Files<'a> = &'a [(&'a str, &'a str)];

const OLD_A: &[(&str, &str)] = &[("a.txt", "old a"), ("sub/b.txt", "old b"), ("gone", "x")];
const NEW_A: &[(&str, &str)] = &[("a.txt", "new a"), ("sub/c.txt", "new c")];
const OLD_B: &[(&str, &str)] = &[("db", "old db"), ("z/y", "old y")];
const NEW_B: &[(&str, &str)] = &[("db", "new db"), ("w", "new w")];

/// Mounts holding their `old` files (root mode 755), with the `new` ones
/// staged as restic would put them (root mode 700), ready to swap.
fn mounts(sets: &[(Files, Files)]) -> (tempfile::TempDir, Vec<Target>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut targets = Vec::new();
    for (i, (old, _)) in sets.iter().enumerate() {
        let t = Target {
            dir: tmp.path().join(format!("volumes/app/d{i}")),
        };
        std::fs::create_dir_all(&t.dir).unwrap();
        std::fs::set_permissions(&t.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_all(&t.dir, old);
        targets.push(t);
    }
    assert_eq!(
        recover(&mut Fs::default(), &targets).unwrap(),
        Vec::<String>::new()
    );
    for (t, (_, new)) in targets.iter().zip(sets) {
        let root = t.staged_root();
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        write_all(&root, new);
    }
    (tmp, targets)
}

/// What a mount holds when nothing of a swap is left but an empty staging directory.
fn settled(mode: &str, files: &[(&str, &str)]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    write_all(tmp.path(), files);
    std::fs::create_dir(tmp.path().join(STAGING)).unwrap();
    let mut t = tree(tmp.path());
    t[0] = format!("mode {mode}");
    t
}

/// A crash: unwinds without running the panic hook (no noise), like a kill.
struct Crash;

/// Runs `swap_all` on two mounts, crashing at change number `at`; `None`
/// when it finished before that.
fn crash_swap_at(at: usize) -> Option<(tempfile::TempDir, Vec<Target>)> {
    let (tmp, ts) = mounts(&[(OLD_A, NEW_A), (OLD_B, NEW_B)]);
    let mut n = 0;
    let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut fs = Fs::with_hook(|_| {
            n += 1;
            if n == at {
                std::panic::resume_unwind(Box::new(Crash));
            }
            Ok(())
        });
        swap_all(&mut fs, &ts, "r1").unwrap();
    }));
    run.is_err().then_some((tmp, ts))
}

#[test]
fn targets_are_mounts_under_volumes() {
    assert!(Target::new("/volumes/app/data").is_ok());
    for bad in [
        "/etc",
        "/volumes/../etc",
        "/volumes/a/../../etc",
        "volumes/x",
        "/volumes",
        "/volumesx/a",
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
fn backups_leave_out_every_name_of_the_swap() {
    assert_eq!(
        backup_excludes("/volumes/app/data/"),
        [
            "/volumes/app/data/.stackshot-restore",
            "/volumes/app/data/.stackshot-old",
            "/volumes/app/data/.stackshot-swap",
            "/volumes/app/data/.stackshot-swap.tmp",
        ]
    );
}

#[test]
fn swap_leaves_exactly_the_restored_files_with_the_restored_mode() {
    let (_tmp, ts) = mounts(&[(OLD_A, NEW_A), (OLD_B, NEW_B)]);
    let lines = swap_all(&mut Fs::default(), &ts, "r1").unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("swapped the restored files into"),
        "{lines:?}"
    );
    assert_eq!(
        tree(&ts[0].dir),
        ["mode 700", "a.txt=new a", "sub/", "sub/c.txt=new c"]
    );
    assert_eq!(tree(&ts[1].dir), ["mode 700", "db=new db", "w=new w"]);
}

#[test]
fn a_restore_that_left_nothing_changes_nothing() {
    let (_tmp, ts) = mounts(&[(OLD_A, NEW_A), (OLD_B, &[])]);
    std::fs::remove_dir_all(ts[1].staged_root()).unwrap();
    let e = format!("{:#}", swap_all(&mut Fs::default(), &ts, "r1").unwrap_err());
    assert!(e.contains("the restore left nothing"), "{e}");
    for t in &ts {
        t.discard().unwrap();
    }
    let mut want = settled("755", OLD_A);
    want.retain(|l| l != ".stackshot-restore/");
    assert_eq!(tree(&ts[0].dir), want);
}

/// The heart of it: a restore of two mounts killed after any change of its
/// swap, then run again, finds both mounts all old or all new, never a mix,
/// never a lost file; the same when the rerun is killed too, anywhere.
#[test]
fn a_rerun_recovers_a_swap_killed_at_any_point() {
    let old = [settled("755", OLD_A), settled("755", OLD_B)];
    let new = [settled("700", NEW_A), settled("700", NEW_B)];
    let (mut rolled, mut finished) = (0, 0);
    for at in 1.. {
        let Some((_tmp, ts)) = crash_swap_at(at) else {
            assert!(at > 10, "the swap made only {at} changes");
            break;
        };
        let lines = recover(&mut Fs::default(), &ts).unwrap();
        let got = [tree(&ts[0].dir), tree(&ts[1].dir)];
        if got == old {
            rolled += 1;
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("rolled back") || l.contains("held none of its files")),
                "{at}: {lines:?}"
            );
        } else {
            assert_eq!(got, new, "killed at change {at}: a mix or a loss");
            finished += 1;
        }
        // The rerun itself killed at any of its changes, then a third run.
        for again in 1.. {
            let Some((_tmp, ts)) = crash_swap_at(at) else {
                unreachable!()
            };
            let mut n = 0;
            let killed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut fs = Fs::with_hook(|_| {
                    n += 1;
                    if n == again {
                        std::panic::resume_unwind(Box::new(Crash));
                    }
                    Ok(())
                });
                recover(&mut fs, &ts).unwrap();
            }));
            if killed.is_ok() {
                break;
            }
            recover(&mut Fs::default(), &ts).unwrap();
            let got2 = [tree(&ts[0].dir), tree(&ts[1].dir)];
            assert_eq!(got2, got, "swap killed at {at}, its recovery at {again}");
        }
    }
    assert!(
        rolled > 0 && finished > 0,
        "rolled {rolled}, finished {finished}"
    );
}

/// A change that fails (not a crash) anywhere: the error is one line naming
/// each mount's state, and the mounts are all old or all new right away.
#[test]
fn a_failing_change_leaves_all_old_or_all_new() {
    let old = [settled("755", OLD_A), settled("755", OLD_B)];
    let new = [settled("700", NEW_A), settled("700", NEW_B)];
    let own = |t: &[String]| -> Vec<String> {
        t.iter()
            .filter(|l| !NAMES.iter().any(|n| l.starts_with(n)))
            .cloned()
            .collect()
    };
    for at in 1.. {
        let (_tmp, ts) = mounts(&[(OLD_A, NEW_A), (OLD_B, NEW_B)]);
        let mut n = 0;
        let mut fs = Fs::with_hook(|what| {
            n += 1;
            if n == at {
                bail!("injected failure at {what}");
            }
            Ok(())
        });
        let result = swap_all(&mut fs, &ts, "r1");
        drop(fs);
        let Err(e) = result else {
            break;
        };
        let e = format!("{e:#}");
        assert!(!e.contains('\n'), "{e}");
        let got = [own(&tree(&ts[0].dir)), own(&tree(&ts[1].dir))];
        if got == [own(&old[0]), own(&old[1])] {
            for t in &ts {
                assert!(
                    e.contains(&format!("{}: rolled back", t.name()))
                        || e.contains(&format!("{}: not swapped", t.name())),
                    "{at}: {e}"
                );
            }
        } else {
            assert_eq!(got, [own(&new[0]), own(&new[1])], "failed at {at}: {e}");
            assert!(e.contains("every mount holds the restored files"), "{e}");
        }
        // Whatever is left, the next restore settles.
        for t in &ts {
            t.discard().unwrap();
        }
        recover(&mut Fs::default(), &ts).unwrap();
        let settled_now = [tree(&ts[0].dir), tree(&ts[1].dir)];
        assert!(
            settled_now == old || settled_now == new,
            "{at}: {settled_now:?}"
        );
    }
}

/// What stackshot before swap records left: a `.stackshot-old` that may be
/// the only copy of some files. A rerun changes nothing and says what to do.
#[test]
fn an_old_dir_without_a_record_is_never_deleted() {
    let (_tmp, ts) = mounts(&[(OLD_A, NEW_A)]);
    let t = &ts[0];
    // The old swap, killed after it moved `sub` aside.
    std::fs::create_dir(t.old()).unwrap();
    std::fs::rename(t.dir.join("sub"), t.old().join("sub")).unwrap();
    let before = tree(&t.dir);
    let e = format!("{:#}", recover(&mut Fs::default(), &ts).unwrap_err());
    // The worker discards staging directories after a failure: not this one.
    t.discard().unwrap();
    assert!(e.starts_with("nothing was changed: "), "{e}");
    assert!(
        e.contains("/.stackshot-old exists without a swap record"),
        "{e}"
    );
    assert!(e.contains("move its entries back into"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert_eq!(tree(&t.dir), before);
    assert!(before.contains(&".stackshot-old/sub/b.txt=old b".to_string()));
}

#[test]
fn leftovers_holding_no_old_file_are_removed_and_said() {
    let (_tmp, ts) = mounts(&[(OLD_A, NEW_A)]);
    std::fs::create_dir(ts[0].old()).unwrap();
    let lines = recover(&mut Fs::default(), &ts).unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("they held none of its files"),
        "{lines:?}"
    );
    assert_eq!(tree(&ts[0].dir), settled("755", OLD_A));
}

#[test]
fn the_old_files_of_a_committed_swap_are_removed_and_said() {
    let (_tmp, ts) = mounts(&[(OLD_A, NEW_A)]);
    let mut fs = Fs::with_hook(|what| {
        if what.starts_with("rm -r") {
            std::panic::resume_unwind(Box::new(Crash));
        }
        Ok(())
    });
    assert!(std::panic::catch_unwind(AssertUnwindSafe(|| swap_all(&mut fs, &ts, "r7"))).is_err());
    let lines = recover(&mut Fs::default(), &ts).unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(".stackshot-old: the files from before the completed restore r7")),
        "{lines:?}"
    );
    assert_eq!(tree(&ts[0].dir), settled("700", NEW_A));
}

/// A swap of two mounts, interrupted, then a restore of only one of them:
/// it cannot know whether the other committed, so it changes nothing.
#[test]
fn a_swap_of_mounts_this_restore_does_not_attach_is_left_alone() {
    let (_tmp, ts) = crash_swap_at(4).expect("the swap crashed");
    let before = tree(&ts[0].dir);
    let e = format!("{:#}", recover(&mut Fs::default(), &ts[..1]).unwrap_err());
    assert!(e.contains("restore all of"), "{e}");
    assert!(e.contains(&ts[1].name()), "{e}");
    assert_eq!(tree(&ts[0].dir), before);
}

#[test]
fn discard_keeps_the_staging_directory_of_an_unfinished_swap() {
    let (_tmp, ts) = crash_swap_at(4).expect("the swap crashed");
    ts[0].discard().unwrap();
    assert!(ts[0].stage().is_dir());
    let (_tmp, ts) = mounts(&[(OLD_A, NEW_A)]);
    ts[0].discard().unwrap();
    assert!(!ts[0].stage().exists());
}

#[test]
fn a_damaged_record_is_named_and_nothing_changes() {
    let (_tmp, ts) = mounts(&[(OLD_A, NEW_A)]);
    std::fs::write(ts[0].dir.join(RECORD), "{").unwrap();
    let before = tree(&ts[0].dir);
    let e = format!("{:#}", recover(&mut Fs::default(), &ts).unwrap_err());
    assert!(e.contains("is not a swap record stackshot wrote"), "{e}");
    assert_eq!(tree(&ts[0].dir), before);
}

/// A snapshot from before the swap's names were left out of backups may
/// hold an old `.stackshot-old` or record: never swapped in.
#[test]
fn swap_names_in_the_snapshot_are_not_swapped_in() {
    let new: Files = &[
        ("a.txt", "new a"),
        (".stackshot-old/x", "from an old snapshot"),
        (".stackshot-swap", "{}"),
    ];
    let (_tmp, ts) = mounts(&[(OLD_A, new)]);
    swap_all(&mut Fs::default(), &ts, "r1").unwrap();
    assert_eq!(tree(&ts[0].dir), ["mode 700", "a.txt=new a"]);
}
