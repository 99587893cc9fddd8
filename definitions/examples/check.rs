fn main() {
    for path in std::env::args().skip(1) {
        let src = std::fs::read_to_string(&path).unwrap();
        let c = guichet_definitions::load(&src);
        print!("{}", guichet_definitions::diagnostic::render(&c.diagnostics, &path, &src, false));
        println!("{path}: process={} diags={}", c.process.is_some(), c.diagnostics.len());
    }
}
