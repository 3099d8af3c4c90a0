//! Published test vectors of both SCAC suites (docs/scac.md, "Test
//! vectors"): fixed keys from `scac_common`, ChaCha20 generators seeded
//! with 32 × 0xC1 (client) and 32 × 0xB2 (broker). Asserted byte for byte,
//! and checked to appear verbatim in the documentation.

mod scac_common;

use ledgermq_security::scac::Suite;
use scac_common::*;

pub const TOPIC: &str = "sensors/temp";
pub const C2B_DATA: &[u8] = b"21.5 C";
pub const B2C_DATA: &[u8] = b"setpoint 19";

/// Named hex values of one suite's exchange, in protocol order.
fn compute(suite: Suite) -> Vec<(&'static str, String)> {
    let p = parties(suite);
    let mut s = handshake_seeded(&p, CLIENT_RNG_SEED, BROKER_RNG_SEED);
    let publish_c2b = s.client.seal(TOPIC, 1, C2B_DATA).unwrap();
    assert_eq!(s.broker.open(TOPIC, 1, &publish_c2b).unwrap(), C2B_DATA);
    let np = s.client.key_update(1).unwrap();
    s.broker.accept_key_update(1, &np).unwrap();
    let publish_b2c = s.broker.seal(TOPIC, 2, B2C_DATA).unwrap();
    assert_eq!(s.client.open(TOPIC, 2, &publish_b2c).unwrap(), B2C_DATA);
    let ns = s.broker.key_update(2).unwrap();
    s.client.accept_key_update(2, &ns).unwrap();
    vec![
        ("step 1", hex::encode(&s.step1)),
        ("step 2", hex::encode(&s.step2)),
        ("step 3", hex::encode(&s.step3)),
        (
            "PUBLISH client to broker, packet 1",
            hex::encode(publish_c2b),
        ),
        ("Np, packet 1", np),
        (
            "PUBLISH broker to client, packet 2",
            hex::encode(publish_b2c),
        ),
        ("Ns, packet 2", ns),
    ]
}

/// The documentation's rendering: 64 hex digits per line.
fn wrapped(hex: &str) -> String {
    hex.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn render(suite: Suite) -> String {
    compute(suite)
        .into_iter()
        .map(|(name, hex)| format!("{name} ({} bytes):\n{}\n", hex.len() / 2, wrapped(&hex)))
        .collect()
}

#[test]
fn vectors_are_reproduced_byte_for_byte() {
    if std::env::var_os("SCAC_PRINT_VECTORS").is_some() {
        for suite in Suite::ALL {
            println!("== {suite}\n{}", render(suite));
        }
    }
    for suite in Suite::ALL {
        let expected = match suite {
            Suite::Default => DEFAULT_VECTORS,
            Suite::RsaCompat => COMPAT_VECTORS,
        };
        assert_eq!(render(suite), expected, "{suite}");
    }
}

#[test]
fn vectors_are_published_in_the_documentation() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scac.md"))
        .unwrap();
    for vectors in [DEFAULT_VECTORS, COMPAT_VECTORS] {
        assert!(doc.contains(vectors), "docs/scac.md lacks:\n{vectors}");
    }
    for key in [DEVICE_RSA_P, DEVICE_RSA_Q, BROKER_RSA_P, BROKER_RSA_Q] {
        assert!(
            doc.contains(&wrapped(key)),
            "docs/scac.md lacks an RSA test prime"
        );
    }
}

const DEFAULT_VECTORS: &str = "\
step 1 (138 bytes):\n\
0973656e736f722d3432cc72ccbb4ac231b4e70057c5e5f501bd93c0a57632ea\n\
23f662f9dce90c41a53c02fdd82c0a2c658646ab61e0c29164d0d9011be9c566\n\
758f82cc4203ef32556e854ea5987c0a7c688f8532f8a7a547bcfe50fd9127c0\n\
afc390b71e087d6daf6b78e6a610d6b03b4112ef7e16222cd47f847a8fa40f17\n\
b4858c667a808ef4ff07\n\
step 2 (128 bytes):\n\
5a52d5a2940d14c31358cef034d0de477d7560c7adf28812a11d48ba6f58815d\n\
1b625257544bbd1b48ae4923f6cdc2ddb6a4d5ff62f89dce867a036d933a0a38\n\
3d04a2ac693c1f2161cef0815d8a0cbc60413e96a606517b8c0ba8ce44f2f6ca\n\
32a8a77cdc530b7d94ad0e551414c71562d8ec1c293fd66af8be60fddf8bd905\n\
step 3 (96 bytes):\n\
a7b1b4a6214c64a8185bf7db59f76cfd3fb22c127db804212abdc016c44cb0d0\n\
80b910b4205b29fd04267cbbd5c3c939acefad86e12b3e795e571d89f34fa205\n\
2abc413b1a6b8c65e77a7b9c75dd93832035a198fcb3baa470d43ce679e3c8d4\n\
PUBLISH client to broker, packet 1 (30 bytes):\n\
0000000000000000411fee63c56f3c9150e87fb485d9895f615d481a49f8\n\
Np, packet 1 (33 bytes):\n\
0000000000000001b255c388130aa3d42158a5b574687225c35d84517fe55a7b\n\
c7\n\
PUBLISH broker to client, packet 2 (35 bytes):\n\
0000000000000000303d3b9a756ea470c6d849bdb72bf3e9fee09bc233ca212b\n\
6e11d9\n\
Ns, packet 2 (33 bytes):\n\
00000000000000017386fa38f89c6401efbcd83ff4d882c9234f0007ddc66ab0\n\
94\n\
";
const COMPAT_VECTORS: &str = "\
step 1 (266 bytes):\n\
434c49454e544531010016496f469a8d017796f2c9bbdf93ee34a1b362b85902\n\
0abc1c911c0f86b8c4cef09f0761153cecfe30ade91aaa432f320a60e355c506\n\
4c7695fc724fdac246bcd957c5a7282da2a697159ac6d587271935f1672e82b7\n\
49a6b8d043769ebef3cac8aca1c0bd76d2134915e6d199bca8b6ad064c39c971\n\
8c2b4155fcf9d6b347664f6e019fd34b1431fdd64eb4bcafb2c72235973d12c7\n\
abea39b60b8a98a484eec6367ec2e30787970bcab41182ceb69be25be36328b4\n\
4ce27a42ad5e530799a437ee1c90c3ccee7f902e727653ec7b998dbf877e9aa5\n\
cad4f8f88bf4b44065ed0d4bdd61fa74da17746b527461e66fdb7ac9f2197f7c\n\
6b997cada948bc44e090\n\
step 2 (516 bytes):\n\
01009eb0ac905f22f7d4b6d35aa8a00a04143de37b15dcfce87597c4add59b5e\n\
19122426bec91f25b22c17e55d7a3e7bee695715a1c06a0fde8b33b834a6fcdd\n\
1284cf40750d56f021d38da32944f46ed9163849afe88f97fa203ea998619963\n\
9c349ad4a480baafbb7dbaf85406642faedced8c410dd92ac6d62d05720602f2\n\
5bb8eb0eb5bafbfa2f20b58987edd2e2f9106d746bef9900a1a21c9ba388abf2\n\
692420f642d68f04b5e9e344010afe32208c2c24032b8483e2f94ad117b48e98\n\
e7c9b8b265a4f5e3f55a9ed9bfe936c1762146bc97cfdfa3ef506780805b5266\n\
3b029c5914d2d41031fc1ba280458397ae366bc784db40c00c2a7d0eadc353e9\n\
4697010011ade0fe09f461e7c68a042c395f88b54cc6f391af601acc1b92c8c0\n\
f3b9afa42337b8ecef6c969bd3083a8a26adcc951e2dc51e38cb9dbcc3d7e5de\n\
46fdac9a4ab5b08dc2219a3dee036b60f98f581668a0c4cec48aa12892090ba9\n\
a9413fa5f1060210d2440858baf017e137debec05e4852603d0e60dcc086c4b2\n\
fcb5887153be3bd66f2f1295c06d87551d28af20c8fcda8b32110c88f11ea503\n\
2421e989ebb94565c11e08a522f7feb4c51a54d6a7088afd024d6fe2fdf742bf\n\
5c6982334d3638f416136aa7e6a50b72e87943a2971828425ba3d2be8ef149e1\n\
73357d6c0853d5a16e5e05758219c7ce466376aed05e456cf8926c061c44c148\n\
1098e987\n\
step 3 (258 bytes):\n\
01008dc5831bf03dcd2fb919d3f13e8cce14d14d8e70096fb92ad3e34ce05ca1\n\
5c8134633d4d3a33637d78f1c82a7c9979eff06ba6318a3a962355755fb945f8\n\
d37eea5c29ebee33e430ce5d297962f6a902b068633b67135a86f27aea0e3c57\n\
61424dae30a11559a60b65e41a3488eeabf396a131586278660051a508be9bfd\n\
e8752894ef9a442ee6fac5a56bd8ecfd1849696de00f8cfdc118040efed8f388\n\
ecc905a31f03a85c45680ab66ec708073c3cde7f15a142f9b6a1c1257e2ce711\n\
bc7a4dc0065621e13ea105e05bcca45ca7ef09b1a5ca777d5559bbf7a0ce2df6\n\
c02b22ca92596fadfba76d8065bd2af89a17576d4fba3a18774210dd3ecc2607\n\
3d7a\n\
PUBLISH client to broker, packet 1 (34 bytes):\n\
0020b2b709dc014f6781effe36c6a41f0b669f86cb554bf629d93ba894051bad\n\
d860\n\
Np, packet 1 (50 bytes):\n\
0030a2bff6c5e6d0cf39804ec68e6078a62654e0a268ffd01407327b014df9b2\n\
199d2545615b042bcfbbdbfed8cb6d645849\n\
PUBLISH broker to client, packet 2 (34 bytes):\n\
0020bdcff707cfd75ffcbf1614f6e555f2f30efb9151047bc5962e2bfebb12f3\n\
cc21\n\
Ns, packet 2 (50 bytes):\n\
00306e03bca7b55210368c2685840d21860eb20c00f3eb734af6abbf4e84c97e\n\
b2fbe4b8963275c092442fde423a64904ef3\n\
";
