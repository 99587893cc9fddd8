// Migrations are embedded with include_str!: rebuild when one changes or is added.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
