use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};

use super::{Spool, Spooled, Uploaded, sweep, upload_order};

/// A repository in memory that records the order files reach it; it can
/// refuse packs.
#[derive(Default)]
struct Memory {
    files: Mutex<Vec<(FileType, Id, Vec<u8>)>>,
    refuse_packs: bool,
}

impl Memory {
    fn kinds(&self) -> Vec<FileType> {
        self.files.lock().unwrap().iter().map(|f| f.0).collect()
    }
}

impl ReadBackend for Memory {
    fn location(&self) -> String {
        "memory".into()
    }
    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        Ok(self
            .files
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.0 == tpe)
            .map(|f| (f.1, f.2.len() as u32))
            .collect())
    }
    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.files
            .lock()
            .unwrap()
            .iter()
            .find(|f| f.0 == tpe && &f.1 == id)
            .map(|f| Bytes::from(f.2.clone()))
            .ok_or_else(|| RusticError::new(ErrorKind::Backend, "not found"))
    }
    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        Ok(self
            .read_full(tpe, id)?
            .slice(offset as usize..(offset + length) as usize))
    }
    fn warmup_path(&self, _tpe: FileType, _id: &Id) -> String {
        String::new()
    }
}

impl WriteBackend for Memory {
    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        if self.refuse_packs && tpe == FileType::Pack {
            return Err(RusticError::new(ErrorKind::Backend, "the uplink is gone"));
        }
        let data = content.slice().iter().flat_map(|b| b.to_vec()).collect();
        self.files.lock().unwrap().push((tpe, *id, data));
        Ok(())
    }
    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        self.files
            .lock()
            .unwrap()
            .retain(|f| !(f.0 == tpe && &f.1 == id));
        Ok(())
    }
}

/// A pack, an index, a snapshot and a second pack, written in that order.
fn write_a_pass(spool: &Spool) -> [Id; 4] {
    let ids = [Id::random(), Id::random(), Id::random(), Id::random()];
    let kinds = [
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
        FileType::Pack,
    ];
    for (i, (id, tpe)) in ids.iter().zip(kinds).enumerate() {
        spool
            .write_bytes(tpe, id, tpe != FileType::Pack, vec![i as u8; 10 + i].into())
            .unwrap();
    }
    ids
}

#[test]
fn writes_stay_local_and_read_back_until_the_upload() {
    let root = tempfile::tempdir().unwrap();
    let memory = Arc::new(Memory::default());
    let spool = Spool::new(memory.clone(), root.path()).unwrap();
    let [pack, index, snapshot, pack2] = write_a_pass(&spool);
    assert!(memory.kinds().is_empty(), "nothing reaches the repository");
    assert_eq!(
        spool.read_full(FileType::Index, &index).unwrap(),
        vec![1u8; 11]
    );
    assert_eq!(
        spool
            .read_partial(FileType::Pack, &pack2, false, 2, 3)
            .unwrap(),
        vec![3u8; 3]
    );
    let packs: Vec<Id> = spool.list(FileType::Pack).unwrap().into_iter().collect();
    assert!(packs.contains(&pack) && packs.contains(&pack2));
    assert_eq!(spool.list(FileType::Snapshot).unwrap(), vec![snapshot]);
    assert_eq!(
        spool.pending(),
        Uploaded {
            files: 4,
            bytes: 10 + 11 + 12 + 13
        }
    );

    let up = spool.upload().unwrap();
    assert_eq!(up, spool_total());
    assert_eq!(
        memory.kinds(),
        [
            FileType::Pack,
            FileType::Pack,
            FileType::Index,
            FileType::Snapshot
        ],
        "packs, then the index, then the snapshot"
    );
    assert_eq!(
        memory.read_full(FileType::Snapshot, &snapshot).unwrap(),
        vec![2u8; 12]
    );
    assert!(!spool.dir().exists(), "the spool is removed once uploaded");
}

fn spool_total() -> Uploaded {
    Uploaded {
        files: 4,
        bytes: 10 + 11 + 12 + 13,
    }
}

#[test]
fn a_failed_pack_upload_sends_no_index_or_snapshot_and_keeps_the_spool() {
    let root = tempfile::tempdir().unwrap();
    let memory = Arc::new(Memory {
        refuse_packs: true,
        ..Default::default()
    });
    let spool = Spool::new(memory.clone(), root.path()).unwrap();
    write_a_pass(&spool);
    let e = spool.upload().unwrap_err();
    assert!(format!("{e:#}").contains("the uplink is gone"), "{e:#}");
    assert!(memory.kinds().is_empty(), "{:?}", memory.kinds());
    assert!(spool.dir().exists());
}

#[test]
fn the_upload_order_puts_packs_before_indexes_before_snapshots() {
    let s = |tpe| Spooled {
        tpe,
        id: Id::random(),
        cacheable: false,
    };
    let written = [
        s(FileType::Snapshot),
        s(FileType::Pack),
        s(FileType::Index),
        s(FileType::Pack),
        s(FileType::Key),
    ];
    let order = upload_order(&written);
    let kinds: Vec<FileType> = order.iter().map(|s| s.tpe).collect();
    assert_eq!(
        kinds,
        [
            FileType::Pack,
            FileType::Pack,
            FileType::Index,
            FileType::Snapshot,
            FileType::Key
        ]
    );
    // Within a kind, the order written.
    assert_eq!(order[0], written[1]);
    assert_eq!(order[1], written[3]);
}

#[test]
fn a_removed_spooled_file_never_goes_up() {
    let root = tempfile::tempdir().unwrap();
    let memory = Arc::new(Memory::default());
    let spool = Spool::new(memory.clone(), root.path()).unwrap();
    let [pack, ..] = write_a_pass(&spool);
    spool.remove(FileType::Pack, &pack, false).unwrap();
    assert_eq!(spool.upload().unwrap().files, 3);
    assert!(memory.read_full(FileType::Pack, &pack).is_err());
}

#[test]
fn a_sweep_takes_dead_spools_and_leaves_live_ones() {
    let root = tempfile::tempdir().unwrap();
    let live = Spool::new(Arc::new(Memory::default()), root.path()).unwrap();
    write_a_pass(&live);
    // A spool whose process died: its lock file is there, nobody holds it.
    let dead = root.path().join("dead");
    std::fs::create_dir_all(dead.join("data")).unwrap();
    std::fs::write(dead.join(".lock"), b"").unwrap();
    std::fs::write(dead.join("data/0123"), b"pack").unwrap();
    // One that died before its lock file was made.
    std::fs::create_dir_all(root.path().join("unborn")).unwrap();
    assert_eq!(sweep(root.path()).unwrap(), 2);
    assert!(!dead.exists());
    assert!(live.dir().exists(), "a live spool stays");
    assert_eq!(sweep(&root.path().join("none")).unwrap(), 0);
}
