/// Every heap block is wiped when freed, so values copied by code we do not own (the HTTP,
/// TLS and JSON layers under the Azure SDK) do not outlive their use.
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> =
    zeroizing_alloc::ZeroAlloc(std::alloc::System);

fn main() -> std::process::ExitCode {
    compose_secrets::main()
}
