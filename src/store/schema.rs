//! Where a database's schema stands against the migrations this build carries. Only
//! `referrals migrate` (and `serve --migrate`, for SQLite and demos) changes the schema; every
//! other command checks it and refuses to run on a schema that is missing, behind, ahead of this
//! build or altered, saying what to run.

use sqlx::migrate::Migrator;

use crate::domain::Error;

/// What to run when the schema is behind.
pub(super) const RUN_MIGRATE: &str = "run `referrals migrate` with the URL of the role that owns the \
                           tables (or start `referrals serve --migrate`, for SQLite or a demo)";

/// One row of the migrations table: a version the database was migrated to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct Applied {
    pub version: i64,
    pub success: bool,
    pub checksum: Vec<u8>,
}

/// Checks the migrations a database holds (`None` when it has no migrations table) against
/// those of this build.
pub(super) fn check(applied: Option<&[Applied]>, migrator: &Migrator) -> Result<(), Error> {
    let latest = migrator.iter().map(|m| m.version).max().unwrap_or_default();
    let Some(applied) = applied.filter(|applied| !applied.is_empty()) else {
        return Err(Error::FailedPrecondition(format!(
            "the database has no schema yet (this build needs version {latest}): {RUN_MIGRATE}"
        )));
    };
    for row in applied {
        if !row.success {
            return Err(Error::FailedPrecondition(format!(
                "migration {} failed part-way and is marked so in _sqlx_migrations; restore the \
                 database or finish the migration by hand, then {RUN_MIGRATE}",
                row.version
            )));
        }
        match migrator.iter().find(|m| m.version == row.version) {
            None => {
                return Err(Error::FailedPrecondition(format!(
                    "the database's schema has migration {}, which this build does not know \
                     (it knows up to {latest}): run the newer build that migrated it",
                    row.version
                )));
            }
            Some(migration) if *migration.checksum != *row.checksum => {
                return Err(Error::FailedPrecondition(format!(
                    "migration {} in the database differs from this build's ({}): the schema \
                     was migrated by another build of the service",
                    row.version, migration.description
                )));
            }
            Some(_) => {}
        }
    }
    let current = applied
        .iter()
        .map(|row| row.version)
        .max()
        .unwrap_or_default();
    match migrator
        .iter()
        .find(|m| !applied.iter().any(|row| row.version == m.version))
    {
        Some(missing) => Err(Error::FailedPrecondition(format!(
            "the database's schema is at version {current} and this build needs {latest} \
             (migration {} is not applied): {RUN_MIGRATE}",
            missing.version
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

    fn applied(up_to: i64) -> Vec<Applied> {
        MIGRATOR
            .iter()
            .filter(|m| m.version <= up_to)
            .map(|m| Applied {
                version: m.version,
                success: true,
                checksum: m.checksum.to_vec(),
            })
            .collect()
    }

    fn latest() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap()
    }

    fn refusal(applied: Option<&[Applied]>) -> String {
        check(applied, &MIGRATOR).unwrap_err().to_string()
    }

    #[test]
    fn a_current_schema_passes() {
        check(Some(&applied(latest())), &MIGRATOR).unwrap();
    }

    #[test]
    fn no_schema_says_to_migrate() {
        assert!(refusal(None).contains("no schema yet"));
        assert!(refusal(Some(&[])).contains("referrals migrate"));
    }

    #[test]
    fn a_schema_behind_names_both_versions_and_the_command() {
        let behind = applied(latest() - 2);
        let message = refusal(Some(&behind));
        assert!(
            message.contains(&format!(
                "at version {} and this build needs {}",
                latest() - 2,
                latest()
            )),
            "{message}"
        );
        assert!(message.contains("referrals migrate"), "{message}");
    }

    #[test]
    fn a_schema_ahead_of_the_build_is_refused() {
        let mut ahead = applied(latest());
        ahead.push(Applied {
            version: latest() + 1,
            success: true,
            checksum: vec![0; 48],
        });
        assert!(refusal(Some(&ahead)).contains("does not know"));
    }

    #[test]
    fn an_altered_or_half_applied_migration_is_refused() {
        let mut altered = applied(latest());
        altered[0].checksum[0] ^= 1;
        assert!(refusal(Some(&altered)).contains("differs from this build's"));
        let mut failed = applied(latest());
        failed.last_mut().unwrap().success = false;
        assert!(refusal(Some(&failed)).contains("failed part-way"));
    }
}
