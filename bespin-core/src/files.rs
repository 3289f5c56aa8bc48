//! Files and directories Bespin creates: the database, backups, snapshots and the temporary
//! places they are written through. A database holds every tenant's data and the secret that
//! seals its ids, so whatever Bespin creates is readable by its owner only: files mode 0600,
//! directories 0700 (on Unix; elsewhere the platform's defaults apply).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Creates the new file `path` (it must not exist), readable and writable by its owner only.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Creates the new directory `path`, usable by its owner only.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut b = DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// A new private directory (see [`create_private_dir`]) under the system's temporary
/// directory, named `prefix` and a random id. The caller removes it.
pub fn private_temp_dir(prefix: &str) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    create_private_dir(&dir)?;
    Ok(dir)
}

/// Makes sure the file `path` exists, creating it empty and private if it does not (a file
/// that exists is left as it is).
pub(crate) fn ensure_private_file(path: &Path) -> io::Result<()> {
    match create_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn what_is_created_is_private() {
        let dir = private_temp_dir("bespin-files-test").expect("dir");
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("f");
        create_private_file(&f).expect("file");
        assert_eq!(mode(&f), 0o600);
        ensure_private_file(&f).expect("exists already");
        let db = dir.join("db.redb");
        crate::Bespin::open(&db).expect("open");
        assert_eq!(mode(&db), 0o600, "a new database file");
        let backup = dir.join("backup.redb");
        crate::Bespin::open(&db)
            .expect("open")
            .backup(&backup)
            .expect("backup");
        assert_eq!(mode(&backup), 0o600, "a backup");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
