//! The order requests, generated from a seed.

/// One order request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Index of the tenant that sends it.
    pub tenant: u32,
    /// Index of the product ordered.
    pub product: u32,
    /// When it arrives, in milliseconds of workload time.
    pub at_ms: u64,
}

/// How many products the catalogue has.
pub const PRODUCTS: u32 = 500;

/// Generates the requests of one run. Tenant `k` sends in proportion to
/// `1 / (k + 1)`, so the first tenants exceed their rate limit, and product
/// popularity is skewed so that the cache has hot keys.
pub fn generate(seed: u64, requests: u64, tenants: u32) -> Vec<Request> {
    let mut random = SplitMix64(seed);
    let weights: Vec<f64> = (0..tenants).map(|k| 1.0 / f64::from(k + 1)).collect();
    let total: f64 = weights.iter().sum();

    (0..requests)
        .map(|index| {
            let mut pick = random.next_f64() * total;
            let mut tenant = tenants - 1;
            for (k, weight) in weights.iter().enumerate() {
                if pick < *weight {
                    tenant = k as u32;
                    break;
                }
                pick -= weight;
            }

            // Squaring a uniform number puts most orders on few products.
            let skewed = random.next_f64() * random.next_f64();
            let product = ((skewed * f64::from(PRODUCTS)) as u32).min(PRODUCTS - 1);

            Request {
                tenant,
                product,
                at_ms: index,
            }
        })
        .collect()
}

/// The SplitMix64 generator: small, fast and the same on every platform, so
/// a seed means the same workload everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_workload() {
        assert_eq!(generate(7, 500, 4), generate(7, 500, 4));
        assert_ne!(generate(7, 500, 4), generate(8, 500, 4));
    }

    #[test]
    fn first_tenant_sends_most() {
        let requests = generate(1, 10_000, 4);
        let count = |tenant| requests.iter().filter(|r| r.tenant == tenant).count();
        assert!(count(0) > count(3) * 2);
        assert!(
            requests
                .iter()
                .all(|r| r.product < PRODUCTS && r.tenant < 4)
        );
    }
}
