//! Where the files a report points at are, relative to the repository: GitHub code
//! scanning maps a SARIF result to a file of the checkout only through a URI relative to
//! the repository root, and annotations need the same relative `file=`. The root is
//! `$GITHUB_WORKSPACE`, else the git top level above the working directory, else the
//! working directory. A file outside the root (a model in a cache or a temporary
//! directory) is named by its file name alone, relative to its own directory, so its
//! identity is the same on every machine and in every temporary directory.

use std::path::{Path, PathBuf};

/// The repository root reports are relative to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub dir: PathBuf,
}

/// A file, as reports name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// Inside the root: the relative path with `/` separators.
    Inside { relative: String },
    /// Outside: the file name, and the absolute directory it is in.
    Outside { name: String, dir: PathBuf },
}

impl Place {
    /// The relative reference: the path under the root, or the file name.
    pub fn relative(&self) -> &str {
        match self {
            Place::Inside { relative } => relative,
            Place::Outside { name, .. } => name,
        }
    }
}

impl Root {
    /// `$GITHUB_WORKSPACE`, else the nearest directory above the working directory that
    /// holds `.git`, else the working directory.
    pub fn discover() -> Root {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        if let Some(ws) = std::env::var_os("GITHUB_WORKSPACE").filter(|w| !w.is_empty()) {
            return Root::at(Path::new(&ws));
        }
        let git_top = cwd.ancestors().find(|d| d.join(".git").exists());
        Root::at(git_top.unwrap_or(&cwd))
    }

    /// A root at `dir` (made absolute when it exists).
    pub fn at(dir: &Path) -> Root {
        Root {
            dir: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
        }
    }

    /// Where `path` is, relative to the root.
    pub fn place(&self, path: &Path) -> Place {
        let absolute = path.canonicalize().unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|cwd| cwd.join(path))
                .unwrap_or_else(|_| path.to_path_buf())
        });
        match absolute.strip_prefix(&self.dir) {
            Ok(rel) if !rel.as_os_str().is_empty() => Place::Inside {
                relative: rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            },
            _ => Place::Outside {
                name: absolute.file_name().map_or_else(
                    || absolute.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                dir: absolute
                    .parent()
                    .map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
            },
        }
    }
}

/// A relative reference with every byte outside RFC 3986's unreserved set and `/`
/// percent-encoded (a space, `#`, `%`, a newline, non-ASCII).
pub fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `file:///abs/dir/` for a directory (with the trailing slash a base URI needs).
pub fn dir_uri(dir: &Path) -> String {
    let mut path = dir
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|c| c != "/" && !c.is_empty())
        .map(|c| uri_escape(&c.replace('\\', "/")))
        .collect::<Vec<_>>()
        .join("/");
    if !path.is_empty() {
        path.push('/');
    }
    format!("file:///{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_and_outside_the_root() {
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::at(root_dir.path());
        std::fs::create_dir(root_dir.path().join("models")).unwrap();
        let model = root_dir.path().join("models/m 1.gguf");
        std::fs::write(&model, b"x").unwrap();
        assert_eq!(
            root.place(&model),
            Place::Inside {
                relative: "models/m 1.gguf".into()
            }
        );
        let elsewhere = tempfile::tempdir().unwrap();
        let other = elsewhere.path().join("cache.gguf");
        std::fs::write(&other, b"x").unwrap();
        let Place::Outside { name, dir } = root.place(&other) else {
            panic!("outside");
        };
        assert_eq!(name, "cache.gguf");
        assert_eq!(dir, elsewhere.path().canonicalize().unwrap());
    }

    #[test]
    fn uris() {
        assert_eq!(uri_escape("models/m 1#x.gguf"), "models/m%201%23x.gguf");
        assert_eq!(uri_escape("a\nb"), "a%0Ab");
        assert_eq!(
            dir_uri(Path::new("/home/u/my repo")),
            "file:///home/u/my%20repo/"
        );
        assert_eq!(dir_uri(Path::new("/")), "file:///");
    }
}
