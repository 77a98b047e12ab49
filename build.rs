//! Rebuilds the crate when a migration changes: `refinery::embed_migrations!` reads
//! `migrations/` at compile time, and cargo would not otherwise know to look there.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
