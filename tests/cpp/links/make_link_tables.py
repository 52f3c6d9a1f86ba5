# Reference values for tests/cpp/links/{logit,probit,cloglog,special}_test.cpp (mpmath,
# 60 digits, analytic derivatives; values below 1e-307 are written as 0.0 = what double gives).
# Run: python make_link_tables.py; the rows are pasted into the tests.
import mpmath as mp
mp.mp.dps = 60
ETAS = ["-700", "-100", "-37", "-30", "-10", "-1", "-0.1", "0", "0.1", "1", "10", "30", "37", "100", "700"]
def fmt(x):
    x = mp.mpf(x)
    if abs(x) < mp.mpf("1e-307"): return "0.0"
    return mp.nstr(x, 17, min_fixed=-1, max_fixed=-1)
def logPhi(e):
    return mp.log1p(-mp.ncdf(-e)) if e > 0 else mp.log(mp.ncdf(e))
L = {
 "logit": dict(mu=lambda e: 1/(1+mp.exp(-e)), dmu=lambda e: mp.exp(-e)/(1+mp.exp(-e))**2,
   lm=lambda e: -mp.log1p(mp.exp(-e)), l1m=lambda e: -mp.log1p(mp.exp(e)),
   dlm=lambda e: 1/(1+mp.exp(e)), dl1m=lambda e: -1/(1+mp.exp(-e))),
 "probit": dict(mu=mp.ncdf, dmu=mp.npdf, lm=logPhi, l1m=lambda e: logPhi(-e),
   dlm=lambda e: mp.npdf(e)/mp.ncdf(e), dl1m=lambda e: -mp.npdf(e)/mp.ncdf(-e)),
 "cloglog": dict(mu=lambda e: -mp.expm1(-mp.exp(e)), dmu=lambda e: mp.exp(e - mp.exp(e)),
   lm=lambda e: mp.log(-mp.expm1(-mp.exp(e))), l1m=lambda e: -mp.exp(e),
   dlm=lambda e: mp.exp(e - mp.exp(e))/(-mp.expm1(-mp.exp(e))), dl1m=lambda e: -mp.exp(e)),
}
for name, f in L.items():
    print("// %s: {eta, linkinv, dmu_deta, log_mu, log1m_mu, dlog_mu, dlog1m_mu}" % name)
    for e in ETAS:
        E = mp.mpf(e)
        print("    {%s}," % ", ".join([e] + [fmt(f[k](E)) for k in ("mu", "dmu", "lm", "l1m", "dlm", "dl1m")]))

# special_test.cpp tables
def special():
    f = fmt
    print("// {x, log Phi(x), phi(x)/Phi(x)}")
    for x in ["-1000", "-700", "-100", "-40", "-35.000001", "-35", "-34.999999", "-20", "-5", "-1",
              "0", "1", "4.999999", "5", "5.000001", "8", "20", "40"]:
        X = mp.mpf(x)
        lc = mp.log1p(-mp.ncdf(-X)) if X > 0 else mp.log(mp.ncdf(X))
        print("    {%s, %s, %s}," % (x, f(lc), f(mp.npdf(X) / mp.ncdf(X))))
    print("// {x, log1p_exp(x), inv_logit(x)}")
    for x in ["-800", "-40", "-1", "0", "1", "40", "800"]:
        X = mp.mpf(x)
        print("    {%s, %s, %s}," % (x, f(mp.log1p(mp.exp(X))), f(1 / (1 + mp.exp(-X)))))
    print("// {x, log1m_exp(x)}")
    for x in ["-800", "-40", "-1", "-0.6931471805599453", "-0.6931", "-0.5", "-1e-10", "-1e-300"]:
        X = mp.mpf(x)
        print("    {%s, %s}," % (x, f(mp.log(-mp.expm1(X)))))

special()
