#!/usr/bin/env python3
"""Reference numbers for tinyemo's bias statistics (tests/analysis/).

Writes tests/data/bias/reference.json. Needs only numpy and mpmath (no scipy on
this machine): incomplete-gamma values are computed with mpmath at 40 digits,
chi-square and CMH statistics with numpy in float64 from their textbook
formulas, BH adjustments with R's p.adjust algorithm, WEAT with an exhaustive
enumeration of the target-set partitions.

    /usr/bin/python3 tools/bias_reference.py
"""
import itertools
import json
import os

import mpmath
import numpy as np

mpmath.mp.dps = 40


def gamma_cases():
    cases = []
    for a in [0.05, 0.5, 1.0, 2.5, 10.0, 50.0, 200.0, 1000.0]:
        for x in [1e-3, 0.1, 0.5 * a, a, a + 1.0, 2.0 * a + 3.0, 5.0 * a + 30.0]:
            p = mpmath.gammainc(a, 0, x, regularized=True)
            q = mpmath.gammainc(a, x, mpmath.inf, regularized=True)
            cases.append({"a": a, "x": x, "p": float(p), "q": float(q)})
    return cases


def chi_square_sf_cases():
    cases = []
    for df in [1, 2, 3, 5, 10, 45]:
        for x in [0.01, 1.0, 3.84, 10.0, 30.07, 100.0, 400.0]:
            q = mpmath.gammainc(df / 2.0, x / 2.0, mpmath.inf, regularized=True)
            cases.append({"df": df, "x": x, "sf": float(q)})
    return cases


def chi_square_table(name, source, table):
    t = np.asarray(table, dtype=np.float64)
    rows = t.sum(1) > 0
    cols = t.sum(0) > 0
    u = t[rows][:, cols]
    n = u.sum()
    expected = np.outer(u.sum(1), u.sum(0)) / n
    x2 = float(((u - expected) ** 2 / expected).sum())
    df = (u.shape[0] - 1) * (u.shape[1] - 1)
    p = float(mpmath.gammainc(df / 2.0, x2 / 2.0, mpmath.inf, regularized=True))
    v = float(np.sqrt(x2 / (n * (min(u.shape) - 1))))
    return {"name": name, "source": source, "table": table, "statistic": x2, "df": df, "p_value": p,
            "cramers_v": v, "min_expected": float(expected.min())}


def bh(p):
    """R's p.adjust(p, "BH")."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")[::-1]
    ranks = np.arange(m, 0, -1)
    adj = np.minimum.accumulate(p[order] * m / ranks)
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.tolist()


def cmh(strata, correct):
    dev = var = rd_num = rd_den = 0.0
    for a, b, c, d in strata:
        n1, n0 = a + b, c + d
        n = n1 + n0
        m1, m0 = a + c, b + d
        dev += a - n1 * m1 / n
        var += n1 * n0 * m1 * m0 / (n * n * (n - 1))
        w = n1 * n0 / n
        rd_num += w * (a / n1 - c / n0)
        rd_den += w
    d = max(0.0, abs(dev) - 0.5) if correct else abs(dev)
    stat = d * d / var
    p = float(mpmath.gammainc(0.5, stat / 2.0, mpmath.inf, regularized=True))
    return {"statistic": stat, "p_value": p, "risk_difference": rd_num / rd_den}


def weat_case(seed, nx, ny, na, nb, dim):
    rng = np.random.default_rng(seed)
    X, Y, A, B = (rng.standard_normal((k, dim)) for k in (nx, ny, na, nb))
    X[:, 0] += 0.8  # a planted association so the effect is not ~0
    A[:, 0] += 0.8

    def unit(M):
        return M / np.linalg.norm(M, axis=1, keepdims=True)

    def s(W):
        W = unit(W)
        return (W @ unit(A).T).mean(1) - (W @ unit(B).T).mean(1)

    sx, sy = s(X), s(Y)
    stat = sx.sum() - sy.sum()
    allw = np.concatenate([sx, sy])
    d = (sx.mean() - sy.mean()) / allw.std(ddof=1)
    n = nx + ny
    total = allw.sum()
    # Two-sided: distance from the partitions' mean statistic, total (nx - ny) / n
    # (zero for equal sizes, where this is |S_i| >= |S|).
    centre = total * (nx - ny) / n
    ge = tot = ge_abs = 0
    for idx in itertools.combinations(range(n), nx):
        si = allw[list(idx)].sum()
        st = si - (total - si)
        tot += 1
        ge += st >= stat - 1e-12
        ge_abs += abs(st - centre) >= abs(stat - centre) - 1e-12
    return {"seed": seed, "X": X.tolist(), "Y": Y.tolist(), "A": A.tolist(), "B": B.tolist(),
            "statistic": float(stat), "effect_size": float(d), "p_one_sided": ge / tot,
            "p_two_sided": ge_abs / tot, "partitions": tot}


def main():
    ref = {
        "generator": "tools/bias_reference.py (numpy %s, mpmath %s)" % (np.__version__, mpmath.__version__),
        "incomplete_gamma": gamma_cases(),
        "chi_square_sf": chi_square_sf_cases(),
        "chi_square_tables": [
            chi_square_table("gender_party", "Agresti, Categorical Data Analysis (2nd ed.), Table 3.2: "
                             "X^2 = 30.1, df = 2", [[762, 327, 468], [484, 239, 477]]),
            chi_square_table("aspirin_mi", "Physicians' Health Study, Agresti Table 2.3 (2x2)",
                             [[189, 10845], [104, 10933]]),
            chi_square_table("sparse_with_empty_row", "3x4 with an empty row and a sparse cell",
                             [[12, 5, 0, 9], [0, 0, 0, 0], [3, 14, 6, 2]]),
            chi_square_table("five_by_three", "random 5x3",
                             np.random.default_rng(3).integers(0, 40, (5, 3)).tolist()),
        ],
        "benjamini_hochberg": {
            "source": "Benjamini & Hochberg (1995), section 4: 15 p-values, q = 0.05 rejects the 4 smallest",
            "p_values": [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
                         0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000],
        },
        "mantel_haenszel": {
            "source": "UCBAdmissions (Bickel et al. 1975), exposure = male, outcome = admitted, strata = "
                      "department A-F; R mantelhaen.test(UCBAdmissions) prints X^2 = 1.4269, p = 0.2323 (continuity-corrected)",
            "strata": [[512, 313, 89, 19], [353, 207, 17, 8], [120, 205, 202, 391],
                       [138, 279, 131, 244], [53, 138, 94, 299], [22, 351, 24, 317]],
        },
        "weat": [weat_case(1, 4, 4, 3, 3, 16), weat_case(2, 5, 3, 2, 4, 8)],
    }
    bhref = ref["benjamini_hochberg"]
    bhref["adjusted"] = bh(bhref["p_values"])
    shuffled = [3, 14, 0, 7, 9, 1, 12, 5, 2, 11, 4, 13, 6, 10, 8]
    bhref["shuffled_order"] = shuffled
    mh = ref["mantel_haenszel"]
    mh["uncorrected"] = cmh(mh["strata"], False)
    mh["corrected"] = cmh(mh["strata"], True)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "bias", "reference.json")
    with open(out, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(out))
    print("gender_party", ref["chi_square_tables"][0]["statistic"], ref["chi_square_tables"][0]["p_value"])
    print("BH", bhref["adjusted"])
    print("CMH", mh["uncorrected"], mh["corrected"])
    print("WEAT", [(w["effect_size"], w["p_one_sided"], w["partitions"]) for w in ref["weat"]])


if __name__ == "__main__":
    main()
