use super::*;

fn rows(v: &[(&str, i64)]) -> TableRows {
    v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// The same counts, however the stream is cut.
fn counted_in_chunks(pg: bool, db: Option<&str>, dump: &[u8]) -> Counted {
    let whole = count(pg, db, dump);
    for size in [1, 2, 3, 5, 7, 64, 4096] {
        let mut c = RowCounter::new(pg, db);
        for chunk in dump.chunks(size) {
            c.feed(chunk);
        }
        assert_eq!(c.finish(), whole, "chunks of {size}");
    }
    whole
}

/// A `pg_dumpall` (PostgreSQL 17) of databases `app` and `my db`, whose data
/// and code hold text that looks like COPY statements, rows and their end.
const PG_DUMPALL: &str = r#"--
-- PostgreSQL database cluster dump
--

\restrict AbCdEf123

SET default_transaction_read_only = off;
CREATE ROLE app;

\connect template1

--
-- Database "app" dump
--

CREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'UTF8';
\connect app

CREATE FUNCTION public.f() RETURNS text
    LANGUAGE sql
    AS $_$
COPY public.notes (id) FROM stdin;
SELECT 'x'
$_$;

COMMENT ON TABLE public.notes IS 'a comment;
COPY public.notes (id, body) FROM stdin;
it''s still the string';

/* a block comment
COPY public.notes (id) FROM stdin;
/* nested */
*/

SELECT E'it\'s;
COPY public.notes (id) FROM stdin;';

COPY public.notes (id, body) FROM stdin;
1	COPY public.notes (id) FROM stdin;
2	\\.
3	a tab\tand a line\nbreak escaped
4	\N
5	),(

\.

COPY public.empty (id) FROM stdin;
\.

COPY "My Schema"."odd""name.with dot" (id) FROM stdin;
1
2
\.

--
-- PostgreSQL database dump complete
--

CREATE DATABASE "my db" WITH TEMPLATE = template0;
\connect -reuse-previous=on "dbname='my db'"

COPY public.items (id) FROM stdin;
1
\.

CREATE DATABASE "it's" WITH TEMPLATE = template0;
\connect -reuse-previous=on "dbname='it\'s'"

COPY public.items (id) FROM stdin;
7
8
\.

\connect "Upper"

COPY Public.Items (id) FROM stdin;
9
\.

--
-- PostgreSQL database dump complete
--

\unrestrict AbCdEf123

--
-- PostgreSQL database cluster dump complete
--

"#;

#[test]
fn postgres_rows_are_the_lines_of_each_copy_block_and_nothing_else() {
    let c = counted_in_chunks(true, None, PG_DUMPALL.as_bytes());
    assert_eq!(
        c.tables,
        rows(&[
            ("app.public.notes", 6),
            ("app.public.empty", 0),
            ("app.My Schema.odd\"name.with dot", 2),
            ("my db.public.items", 1),
            ("it's.public.items", 2),
            ("Upper.public.items", 1),
        ])
    );
    assert!(c.complete);
    let crlf = PG_DUMPALL.replace('\n', "\r\n");
    assert_eq!(count(true, None, crlf.as_bytes()), c);
}

#[test]
fn a_pg_dump_of_one_database_counts_in_that_database() {
    let dump = "COPY public.t (a) FROM stdin;\n1\n2\n\\.\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict x\n";
    let c = counted_in_chunks(true, Some("shop"), dump.as_bytes());
    assert_eq!(c.tables, rows(&[("shop.public.t", 2)]));
    assert!(c.complete);
}

#[test]
fn a_postgres_stream_cut_short_is_not_complete() {
    let whole = PG_DUMPALL.as_bytes();
    // Cut inside the first COPY block: its rows so far are counted.
    let at = PG_DUMPALL.find("3\ta tab").unwrap();
    let c = count(true, None, &whole[..at]);
    assert!(!c.complete);
    assert_eq!(c.tables, rows(&[("app.public.notes", 2)]));
    // Cut after the first database's end: the cluster dump is not whole.
    let at = PG_DUMPALL.find("CREATE DATABASE \"my db\"").unwrap();
    assert!(!count(true, None, &whole[..at]).complete);
    // Cut inside a string, or with a statement left open.
    assert!(
        !count(
            true,
            None,
            b"-- PostgreSQL database dump complete\nSELECT 'x"
        )
        .complete
    );
    assert!(
        !count(
            true,
            None,
            b"-- PostgreSQL database dump complete\nSELECT 1"
        )
        .complete
    );
    assert!(!count(true, None, b"").complete);
}

#[test]
fn a_long_copy_row_is_not_kept_whole() {
    let mut c = RowCounter::new(true, Some("d"));
    c.feed(b"COPY public.t (a) FROM stdin;\n\\.");
    for _ in 0..1000 {
        c.feed(b"xxxxxxxxxxxxxxxx");
    }
    assert!(c.pending.len() <= 4);
    c.feed(b"\n\\.\n");
    assert_eq!(c.finish().tables, rows(&[("d.public.t", 1)]));
}

/// A `mariadb-dump --databases shop "my db"` with routines and triggers, and
/// values that hold `),(`, quotes, escapes, raw newlines and statements.
const MARIA_DUMP: &str = r#"/*M!999999\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;

--
-- Current Database: `shop`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;

USE `shop`;

DROP TABLE IF EXISTS `notes`;
CREATE TABLE `notes` (
  `id` int(11) NOT NULL,
  `body` text DEFAULT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

LOCK TABLES `notes` WRITE;
/*!40000 ALTER TABLE `notes` DISABLE KEYS */;
INSERT INTO `notes` VALUES (1,'a),(b'),(2,'it\'s ),( and \\'),(3,"dq \" ),("),(4,'two '' quotes (,'),(5,'raw
newline),(
INSERT INTO `notes` VALUES (9);'),(6,NULL),(7,-1.5e3),(8,_binary '\0\Z\n');
INSERT INTO `notes` VALUES (10,'more');
/*!40000 ALTER TABLE `notes` ENABLE KEYS */;
UNLOCK TABLES;

-- INSERT INTO `notes` VALUES (11,'a comment');
# INSERT INTO `notes` VALUES (12,'a hash comment');
/* INSERT INTO `notes` VALUES (13,'a block comment'); */

LOCK TABLES `odd``name` WRITE;
INSERT INTO `odd``name` VALUES (1),(2),(3);
UNLOCK TABLES;

/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER t BEFORE INSERT ON notes FOR EACH ROW BEGIN
INSERT INTO audit VALUES (NEW.id, '*/ ), (');
END */;

DELIMITER ;;
CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()
BEGIN
INSERT INTO `notes` VALUES (14,'in a procedure');
INSERT INTO `notes` VALUES (15,'in a procedure');
END ;;
DELIMITER ;

--
-- Current Database: `my db`
--

USE `my db`;

INSERT INTO `t` VALUES (1,'x'),(2,'y') ON DUPLICATE KEY UPDATE b=VALUES(b);
INSERT INTO `other`.`q` VALUES (1);
REPLACE INTO `r` VALUES (1),(2);
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
-- Dump completed on 2026-01-01  2:00:00
"#;

#[test]
fn mariadb_rows_are_the_tuples_of_each_insert_and_nothing_else() {
    let c = counted_in_chunks(false, None, MARIA_DUMP.as_bytes());
    assert_eq!(
        c.tables,
        rows(&[
            ("shop.notes", 9),
            ("shop.odd`name", 3),
            ("my db.t", 2),
            ("other.q", 1),
            ("my db.r", 2),
        ])
    );
    assert!(c.complete);
    let crlf = MARIA_DUMP.replace('\n', "\r\n");
    assert_eq!(count(false, None, crlf.as_bytes()), c);
}

#[test]
fn mariadb_values_may_be_any_bytes() {
    let mut dump = b"USE `b`;\nINSERT INTO `bin` VALUES (1,'".to_vec();
    dump.extend_from_slice(&[0xff, 0xfe, b'\\', b'\'', 0x00, b')', b',', b'(', 0x80]);
    dump.extend_from_slice(b"'),(2,'\xc3\xa9');\n-- Dump completed\n");
    let c = counted_in_chunks(false, None, &dump);
    assert_eq!(c.tables, rows(&[("b.bin", 2)]));
    assert!(c.complete);
}

#[test]
fn a_mariadb_stream_cut_short_is_not_complete() {
    let at = MARIA_DUMP.find("(3,\"dq").unwrap();
    let c = count(false, None, &MARIA_DUMP.as_bytes()[..at]);
    assert!(!c.complete);
    assert_eq!(c.tables, rows(&[("shop.notes", 2)]));
    let at = MARIA_DUMP.find("-- Dump completed").unwrap();
    assert!(!count(false, None, &MARIA_DUMP.as_bytes()[..at]).complete);
    // `--x` is no comment in MariaDB: no end either.
    assert!(!count(false, None, b"--Dump completed\n").complete);
}

#[test]
fn connect_targets_are_read_as_psql_reads_them() {
    assert_eq!(
        psql_args(b"\\connect  a \"b \"\"c\" 'd\\'e'"),
        [
            b"\\connect".to_vec(),
            b"a".to_vec(),
            b"b \"c".to_vec(),
            b"d'e".to_vec()
        ]
    );
    assert_eq!(
        conninfo_dbname(b"dbname='my \\'db\\\\'"),
        Some(b"my 'db\\".to_vec())
    );
    assert_eq!(
        conninfo_dbname(b"host=x dbname=plain"),
        Some(b"plain".to_vec())
    );
    assert_eq!(conninfo_dbname(b"host=x"), None);
    assert_eq!(conninfo_dbname(b"nonsense"), None);
}

#[test]
fn mariadb_10_11_writes_each_tuple_on_a_line() {
    let dump = "USE `shop`;\nINSERT INTO `bulk` VALUES\n(1,'it\\'s ),( \\\\ 1\\n);('),\n(2,'x');\n-- Dump completed on 2026-12-06 11:30:00\n";
    let c = counted_in_chunks(false, Some("shop"), dump.as_bytes());
    assert_eq!(c.tables, rows(&[("shop.bulk", 2)]));
    assert!(c.complete);
}
