//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!`
//! embeds the `migrations/` directory at compile time, and a proc macro
//! cannot ask Cargo to watch a directory itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
