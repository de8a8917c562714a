//! KV workloads: put, fill, range, range-prefix, txn-put, txn-mixed.

use anyhow::Result;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use rand::Rng;

use super::Ctx;
use crate::report::Report;

/// Puts `--val-size` values to keys of the key space.
pub(super) async fn put(ctx: &Ctx) -> Result<Report> {
    ctx.timed("KV", |i| {
        let (kv, keys, value) = (ctx.conn(i).kv_client(), ctx.keys.clone(), ctx.value.clone());
        let mut rng = Ctx::rng();
        move |t| {
            let key = keys.key(keys.pick(t, &mut rng));
            let (mut kv, value) = (kv.clone(), value.clone());
            async move { kv.put(key, value, None).await.map(drop) }
        }
    })
    .await
}

/// Puts `--total` distinct keys: the key space is the total, walked in order.
pub(super) async fn fill(ctx: &Ctx) -> Result<Report> {
    put(ctx).await
}

/// Gets one key at a time, with `--consistency`.
pub(super) async fn range(ctx: &Ctx) -> Result<Report> {
    ctx.prefill().await?;
    ctx.timed("KV", |i| {
        let (kv, keys, options) = (
            ctx.conn(i).kv_client(),
            ctx.keys.clone(),
            ctx.read_options(),
        );
        let mut rng = Ctx::rng();
        move |t| {
            let key = keys.key(keys.pick(t, &mut rng));
            let (mut kv, options) = (kv.clone(), options.clone());
            async move { kv.get(key, Some(options)).await.map(drop) }
        }
    })
    .await
}

/// Ranges over the key prefix, at most `limit` keys each.
pub(super) async fn range_prefix(ctx: &Ctx, limit: i64) -> Result<Report> {
    ctx.prefill().await?;
    let prefix = ctx.keys.prefix().to_vec();
    ctx.timed("KV", |i| {
        let kv = ctx.conn(i).kv_client();
        let options = ctx.read_options().with_prefix().with_limit(limit);
        let prefix = prefix.clone();
        move |_| {
            let (mut kv, options, prefix) = (kv.clone(), options.clone(), prefix.clone());
            async move { kv.get(prefix, Some(options)).await.map(drop) }
        }
    })
    .await
}

/// A compare (the key's version is at least 0, which always holds) then a put.
fn compare_and_put(key: Vec<u8>, value: Vec<u8>) -> Txn {
    Txn::new()
        .when([Compare::version(key.clone(), CompareOp::Greater, -1)])
        .and_then([TxnOp::put(key, value, None)])
}

/// Compare-and-put transactions.
pub(super) async fn txn_put(ctx: &Ctx) -> Result<Report> {
    ctx.timed("KV", |i| {
        let (kv, keys, value) = (ctx.conn(i).kv_client(), ctx.keys.clone(), ctx.value.clone());
        let mut rng = Ctx::rng();
        move |t| {
            let txn = compare_and_put(keys.key(keys.pick(t, &mut rng)), value.clone());
            let mut kv = kv.clone();
            async move { kv.txn(txn).await.map(drop) }
        }
    })
    .await
}

/// Read-only transactions (a get) and write transactions (compare and put),
/// `rw_ratio` reads per write, chosen at random.
pub(super) async fn txn_mixed(ctx: &Ctx, rw_ratio: f64) -> Result<Report> {
    anyhow::ensure!(
        rw_ratio.is_finite() && rw_ratio >= 0.0,
        "--rw-ratio must be a number of reads per write, 0 or more"
    );
    let read_share = rw_ratio / (rw_ratio + 1.0);
    ctx.prefill().await?;
    ctx.timed("KV", |i| {
        let (kv, keys, value) = (ctx.conn(i).kv_client(), ctx.keys.clone(), ctx.value.clone());
        let options = ctx.read_options();
        let mut rng = Ctx::rng();
        move |t| {
            let key = keys.key(keys.pick(t, &mut rng));
            let txn = if rng.gen_bool(read_share) {
                Txn::new().and_then([TxnOp::get(key, Some(options.clone()))])
            } else {
                compare_and_put(key, value.clone())
            };
            let mut kv = kv.clone();
            async move { kv.txn(txn).await.map(drop) }
        }
    })
    .await
}
