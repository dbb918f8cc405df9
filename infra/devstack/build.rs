//! `sqlx::migrate!` embeds the migrations at compile time: rebuild when one is added or changed
//! (cargo does not watch the directory otherwise, and a stale build would miss a migration).

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
