#!/usr/bin/python3
# Fits the polynomials of core's vectorised exact-erf GELU (src/core/simd_math.h):
#   erf(a) = a * P(a^2) for a in [0, 1] (used below 0.5)
#   erfc(a) = exp(-a^2) * G(a) for a in [0.5, 1]
#   erfc(a) = exp(-a^2) / a * Q(1 / a^2) for a >= 1, in two pieces of t = 1/a^2.
# Weighted least squares on Chebyshev nodes, minimising relative error; prints
# the max relative error of each fit (double precision) and the coefficients.
import numpy as np, math
from numpy.polynomial import chebyshev as C
# erf(a) = a * P(a^2) on a in [0,1]
def fit(fn, lo, hi, deg, n=4000):
    t = np.cos(np.linspace(0, np.pi, n)) * (hi-lo)/2 + (hi+lo)/2
    y = np.array([fn(v) for v in t])
    # weighted least squares for relative error
    c = np.polynomial.polynomial.polyfit(t, y, deg, w=1/np.abs(y))
    tt = np.linspace(lo, hi, 20000)
    yy = np.array([fn(v) for v in tt])
    err = np.max(np.abs(np.polynomial.polynomial.polyval(tt, c)/yy - 1))
    return c, err
for deg in (5,6,7):
    c, e = fit(lambda s: math.erf(math.sqrt(s))/math.sqrt(s) if s>0 else 2/math.sqrt(math.pi), 0, 1, deg)
    print('erf deg', deg, e)
P, e = fit(lambda s: math.erf(math.sqrt(s))/math.sqrt(s) if s>0 else 2/math.sqrt(math.pi), 0, 1, 6)
print('P=', ', '.join('%.17gf' % v for v in P))
# f(t) = erfc(a) * a * exp(a^2), t = 1/a^2, a in [1, inf)
def f(t):
    if t == 0: return 1/math.sqrt(math.pi)
    a = 1/math.sqrt(t)
    return math.erfc(a)*a*math.exp(a*a)

for deg in (8,10,12):
    c, e = fit(f, 0.008, 1, deg)
    print('erfc deg', deg, e)
for (lo,hi) in ((0.008,0.3),(0.3,1.0)):
    for deg in (6,7,8):
        c,e = fit(f, lo,hi, deg); print('erfc piece', lo,hi, deg, e)
for (lo,hi) in ((0.008,0.3),(0.3,1.0)):
    c,e = fit(f, lo,hi, 8); print('Q', lo, hi, e, '{', ', '.join('%.9ef' % v for v in c), '}')
c,e = fit(lambda s: math.erf(math.sqrt(s))/math.sqrt(s) if s>0 else 2/math.sqrt(math.pi), 0, 1, 6)
print('P {', ', '.join('%.9ef' % v for v in c), '}')
for deg in (6,7,8):
    c,e = fit(lambda a: math.erfc(a)*math.exp(a*a), 0.5, 1.0, deg); print('G', deg, e, '{', ', '.join('%.9ef' % v for v in c), '}')
