fn main() -> std::process::ExitCode {
    compose_secrets::main()
}
