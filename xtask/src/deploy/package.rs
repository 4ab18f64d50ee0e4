//! The Lambda package: the binary checked for the target (machine, glibc) and zipped
//! deterministically, so the same binary always gives the same bytes and the same `CodeSha256`.

use std::io::Write;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

pub use crate::toolchain::Arch;

impl Arch {
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 0x3E,
            Arch::Arm64 => 0xB7,
        }
    }
}

/// The newest glibc `provided.al2023` has.
pub const MAX_GLIBC: (u32, u32) = (2, 34);

/// What the guard reads from an ELF file.
#[derive(Debug, PartialEq, Eq)]
pub struct ElfFacts {
    pub machine: u16,
    /// The newest `GLIBC_x.y` version the binary needs; `None` for static binaries.
    pub newest_glibc: Option<(u32, u32)>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
}

fn c_str(b: &[u8], at: usize) -> Option<&str> {
    let rest = b.get(at..)?;
    std::str::from_utf8(&rest[..rest.iter().position(|c| *c == 0)?]).ok()
}

/// Read the machine and the glibc versions an ELF64 little-endian file requires, from its
/// `.gnu.version_r` (SHT_GNU_verneed) section.
pub fn read_elf(bytes: &[u8]) -> anyhow::Result<ElfFacts> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        bail!("not an ELF executable");
    }
    if bytes.get(4..6) != Some(&[2, 1]) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let bad = || anyhow::anyhow!("truncated or malformed ELF file");
    let machine = u16_at(bytes, 0x12).ok_or_else(bad)?;
    let section_offset = u64_at(bytes, 0x28).ok_or_else(bad)?;
    let section_size = usize::from(u16_at(bytes, 0x3A).ok_or_else(bad)?);
    let sections = usize::from(u16_at(bytes, 0x3C).ok_or_else(bad)?);
    let header = |i: usize| section_offset + i * section_size;
    let mut newest = None;
    for i in 0..sections {
        const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
        if u32_at(bytes, header(i) + 4).ok_or_else(bad)? != SHT_GNU_VERNEED {
            continue;
        }
        let offset = u64_at(bytes, header(i) + 24).ok_or_else(bad)?;
        let strings = u64_at(bytes, header(u32_at(bytes, header(i) + 40).ok_or_else(bad)? as usize) + 24)
            .ok_or_else(bad)?;
        let mut need = offset;
        for _ in 0..u32_at(bytes, header(i) + 44).ok_or_else(bad)? {
            let count = u16_at(bytes, need + 2).ok_or_else(bad)?;
            let mut aux = need + u32_at(bytes, need + 8).ok_or_else(bad)? as usize;
            for _ in 0..count {
                let name = c_str(bytes, strings + u32_at(bytes, aux + 8).ok_or_else(bad)? as usize)
                    .ok_or_else(bad)?;
                if let Some(version) = name.strip_prefix("GLIBC_").and_then(parse_version) {
                    newest = newest.max(Some(version));
                }
                aux += u32_at(bytes, aux + 12).ok_or_else(bad)? as usize;
            }
            need += u32_at(bytes, need + 12).ok_or_else(bad)? as usize;
        }
    }
    Ok(ElfFacts { machine, newest_glibc: newest })
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Refuse a binary Lambda could not run: wrong machine, or a glibc newer than AL2023's.
pub fn check_binary(bytes: &[u8], arch: Arch) -> anyhow::Result<ElfFacts> {
    let facts = read_elf(bytes)?;
    if facts.machine != arch.elf_machine() {
        bail!(
            "the binary is for ELF machine {:#x}, not {} ({:#x}): build for {} or pass the matching --arch",
            facts.machine,
            arch.lambda_name(),
            arch.elf_machine(),
            arch.rust_target()
        );
    }
    if let Some((major, minor)) = facts.newest_glibc {
        if (major, minor) > MAX_GLIBC {
            bail!(
                "the binary needs glibc {major}.{minor}, but Lambda's provided.al2023 has {}.{}: deploy with `--builder zig` (the default), which links against glibc {}",
                MAX_GLIBC.0,
                MAX_GLIBC.1,
                super::build::ZIG_GLIBC
            );
        }
    }
    Ok(facts)
}

/// A zip with one entry, `bootstrap`, mode 0755, a fixed timestamp: the same binary always
/// gives the same bytes.
pub fn zip_bootstrap(binary: &[u8]) -> anyhow::Result<Vec<u8>> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer.start_file("bootstrap", options).context("cannot start the zip entry")?;
    writer.write_all(binary).context("cannot compress the binary")?;
    Ok(writer.finish().context("cannot finish the zip")?.into_inner())
}

/// Lambda's `CodeSha256`: base64 of the SHA-256 of the zip.
pub fn code_sha256(zip: &[u8]) -> String {
    aws_smithy_types::base64::encode(Sha256::digest(zip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_binary_zips_to_the_same_bytes_and_hash() {
        let a = zip_bootstrap(b"\x7fELF pretend binary").unwrap();
        let b = zip_bootstrap(b"\x7fELF pretend binary").unwrap();
        assert_eq!(a, b);
        assert_eq!(code_sha256(&a), code_sha256(&b));
        assert_ne!(code_sha256(&a), code_sha256(&zip_bootstrap(b"other").unwrap()));
    }

    #[test]
    fn the_zip_holds_one_executable_bootstrap() {
        let zip = zip_bootstrap(b"binary").unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        assert_eq!(archive.len(), 1);
        let entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "bootstrap");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
    }

    #[test]
    fn non_elf_input_is_refused() {
        assert!(read_elf(b"#!/bin/sh\necho hi").unwrap_err().to_string().contains("not an ELF"));
        assert!(read_elf(b"\x7fELF\x01\x01").is_err(), "32-bit accepted");
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(parse_version("2.9").unwrap() < parse_version("2.34").unwrap());
        assert_eq!(parse_version("2.2.5"), Some((2, 2)));
    }
}
