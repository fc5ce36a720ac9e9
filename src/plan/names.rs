//! Names that become paths, checked before anything is planned (pure). A
//! compose service, a project and a mount destination end up as directories
//! under `/volumes` and `/databases`: a crafted label
//! (`com.docker.compose.service=../../etc`) must be refused with one line,
//! never followed out of the tree; include/exclude globs may not climb out
//! with `..` or carry control characters.
//! (`stackshot.databases` entries are checked where the dumps are planned.)

use crate::container::ContainerInfo;

/// What is wrong with `s` as one directory name, if anything.
pub fn segment_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("it is empty")
    } else if s == "." || s == ".." {
        Some("it names a directory's parent or itself")
    } else if s.contains('/') {
        Some("it contains '/'")
    } else if s.chars().any(char::is_control) {
        Some("it contains a control character (NUL, newline, …)")
    } else {
        None
    }
}

/// What is wrong with a mount destination, if anything: it must be absolute,
/// without `.`/`..` components or control characters.
pub fn destination_problem(d: &str) -> Option<&'static str> {
    if !d.starts_with('/') {
        Some("it is not an absolute path")
    } else if d.split('/').any(|p| p == ".." || p == ".") {
        Some("it has a '.' or '..' component")
    } else if d.chars().any(char::is_control) {
        Some("it contains a control character (NUL, newline, …)")
    } else {
        None
    }
}

/// The container's names that become paths, each problem as one line.
pub fn container_problems(c: &ContainerInfo, with_project: bool) -> Vec<String> {
    let mut out = vec![];
    let mut check = |what: &str, value: &str, accepted: &str, problem: Option<&str>| {
        if let Some(p) = problem {
            out.push(format!(
                "container {:?}: {what} {value:?} cannot be used: {p}; accepted: {accepted}",
                c.name
            ));
        }
    };
    const SEGMENT: &str = "a name of letters, digits, '.', '_' and '-', as compose makes them";
    check(
        "compose service label",
        &c.service,
        SEGMENT,
        segment_problem(&c.service),
    );
    if with_project {
        check(
            "compose project label",
            &c.project,
            SEGMENT,
            segment_problem(&c.project),
        );
    }
    for m in &c.mounts {
        check(
            "mount destination",
            &m.destination,
            "an absolute path without '.' or '..' components",
            destination_problem(&m.destination),
        );
    }
    out
}

/// What is wrong with an include/exclude glob, if anything.
pub fn glob_problem(glob: &str) -> Option<&'static str> {
    if glob.chars().any(char::is_control) {
        Some("it contains a control character (NUL, newline, …)")
    } else if glob.split('/').any(|p| p == "..") {
        Some("it has a '..' component")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        for ok in ["app", "my-app_2", "db.main"] {
            assert_eq!(segment_problem(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", "a\nb", "a\0b"] {
            assert!(segment_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn destinations_and_globs() {
        assert_eq!(destination_problem("/var/lib/data"), None);
        for bad in ["data", "/data/../etc", "/./x", "/a\nb"] {
            assert!(destination_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(glob_problem("/var/www/*"), None);
        assert_eq!(glob_problem("uploads-*"), None);
        for bad in ["../*", "/data/../x", "a\0b", "a\nb"] {
            assert!(glob_problem(bad).is_some(), "{bad:?}");
        }
    }
}
