//! The names a secret has outside Compose, derived from its Compose name when the manifest
//! does not set them: its `.env` key and its Key Vault name.
//!
//! Compose accepts `[a-zA-Z0-9._-]+`. The `.env` key is upper snake case (`db.password` and
//! `db-password` → `DB_PASSWORD`, `1password` → `_1PASSWORD`); the Key Vault name maps `_`
//! and `.` to `-` (`db_password` → `db-password`). Two secrets that derive the same name are
//! refused by the store that would confuse them, naming both.

/// `flask-secret-key` → `FLASK_SECRET_KEY`; a leading digit gets a `_` in front.
pub fn default_env_key(secret_name: &str) -> String {
    let key: String = secret_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{key}")
    } else {
        key
    }
}

/// Whether `key` is one of the names derived from `secret_name` (its default `.env` key or
/// vault name): a line that already names the secret need not show it again.
pub fn is_derived(secret_name: &str, key: &str) -> bool {
    key == default_env_key(secret_name) || key == default_vault_name(secret_name)
}

/// How a line that names the secret refers to its key in `store`: just the store when the key
/// is derived from the name (`.env`), else the key too (`` `DBPASS` in .env ``).
pub fn key_in(secret_name: &str, key: &str, store: &str) -> String {
    if is_derived(secret_name, key) {
        store.to_string()
    } else {
        format!("`{key}` in {store}")
    }
}

/// `db_password` → `db-password`: Key Vault names allow only letters, digits and dashes.
pub fn default_vault_name(secret_name: &str) -> String {
    secret_name
        .chars()
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names() {
        assert_eq!(default_env_key("flask-secret-key"), "FLASK_SECRET_KEY");
        assert_eq!(default_env_key("db.password"), "DB_PASSWORD");
        assert_eq!(default_env_key("1password"), "_1PASSWORD");
        assert_eq!(default_env_key("UPPER_case"), "UPPER_CASE");
        assert_eq!(default_vault_name("db_password"), "db-password");
        assert_eq!(default_vault_name("my.secret_x"), "my-secret-x");
        assert_eq!(default_vault_name("DB-PASSWORD"), "DB-PASSWORD");
    }

    #[test]
    fn a_derived_key_is_not_shown_again() {
        assert!(is_derived("flask-secret-key", "FLASK_SECRET_KEY"));
        assert!(is_derived("db_password", "db-password"));
        assert!(!is_derived("db-password", "DBPASSWORD"));
        assert_eq!(
            key_in("flask-secret-key", "FLASK_SECRET_KEY", ".env"),
            ".env"
        );
        assert_eq!(key_in("db-password", "DBPASS", ".env"), "`DBPASS` in .env");
    }
}
