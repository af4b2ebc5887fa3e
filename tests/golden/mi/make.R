#!/usr/bin/env Rscript
## ---------------------------------------------------------------------------
## Golden reference values for Rubin's rules (multiple-imputation pooling),
## produced with mice::pool() and mice::pool.scalar().
##
## Run from this folder:   Rscript make.R
##
## Writes (all numbers with 17 significant digits, "%.17g", so every double
## round-trips exactly):
##   incomplete.csv            the data set before imputation (NA = missing)
##   imputed_1.csv..imputed_5.csv   the m = 5 completed data sets
##   per_imputation_lm.csv     per-imputation lm estimates and model-based SEs
##   per_imputation_glm.csv    per-imputation glm estimates and model-based SEs
##   pooled_lm.csv             mice::pool() output for lm(y ~ x1 + x2 + g)
##   pooled_glm.csv            mice::pool() output for glm(d ~ x1 + x2 + g, binomial)
##   per_imputation_glm_tight.csv, pooled_glm_tight.csv
##                             same glm refitted with glm.control(epsilon = 1e-14)
##   pool_scalar.csv           mice::pool.scalar() on hand-chosen vectors
##   versions.txt              R / mice / broom versions used
##
## The script also re-derives every pooled quantity by hand from the
## per-imputation files (with the formulas documented in README.md) and stops
## if anything disagrees with mice, so the README formulas are verified.
## ---------------------------------------------------------------------------

suppressPackageStartupMessages(library(mice))

## 17 significant digits; Inf/NaN/NA are written as "Inf", "NaN", "NA".
fmt <- function(x) ifelse(is.na(x) & !is.nan(x), "NA", sprintf("%.17g", x))

write_csv17 <- function(df, file) {
  out <- df
  for (nm in names(out)) if (is.numeric(out[[nm]])) out[[nm]] <- fmt(out[[nm]])
  write.table(out, file, sep = ",", row.names = FALSE, quote = FALSE, na = "NA")
  ## Round-trip check: numeric columns must read back bit-identically.
  back <- read.csv(file, stringsAsFactors = FALSE)
  for (nm in names(df)) if (is.numeric(df[[nm]])) {
    if (!identical(as.numeric(back[[nm]]), as.numeric(df[[nm]])))
      stop("round-trip failure in ", file, " column ", nm)
  }
  invisible(file)
}

## ---------------------------------------------------------------------------
## 1. Simulate a small incomplete data set (n = 80)
## ---------------------------------------------------------------------------
set.seed(20240601)
n  <- 80
x1 <- rnorm(n)                                   # continuous, fully observed
g  <- rbinom(n, 1, 0.5)                          # 0/1 group indicator
x2 <- 0.5 * x1 + 0.4 * g + rnorm(n, sd = 0.9)    # continuous, will get NAs
y  <- 1 + 0.8 * x1 + 0.5 * x2 + 0.6 * g + rnorm(n)          # continuous outcome
d  <- rbinom(n, 1, plogis(-0.3 + 0.7 * x1 + 0.6 * x2 + 0.5 * g))  # binary outcome

## MAR missingness in x2: exactly 20 of 80 rows (25 %), drawn with
## probabilities that depend only on the fully observed x1 and y.
p_miss <- plogis(-1.2 + 0.9 * x1 + 0.7 * y)
miss   <- sample.int(n, size = 20, prob = p_miss)
x2_obs <- x2
x2_obs[miss] <- NA

dat <- data.frame(y = y, d = d, x1 = x1, x2 = x2_obs, g = g)
write_csv17(dat, "incomplete.csv")

## ---------------------------------------------------------------------------
## 2. Impute: m = 5, predictive mean matching for every incomplete column
##    (only x2 is incomplete; it is predicted from y, d, x1 and g).
## ---------------------------------------------------------------------------
m   <- 5
imp <- mice(dat, m = m, method = "pmm", seed = 2024, printFlag = FALSE)

for (j in seq_len(m)) {
  cj <- complete(imp, j)[, c("y", "d", "x1", "x2", "g")]
  write_csv17(cj, sprintf("imputed_%d.csv", j))
}

## ---------------------------------------------------------------------------
## 3. Fit the analysis models on every completed data set and pool them
## ---------------------------------------------------------------------------
fit_lm  <- with(imp, lm(y ~ x1 + x2 + g))
fit_glm <- with(imp, glm(d ~ x1 + x2 + g, family = binomial))

## pool() uses the default rule = "rubin1987"; dfcom is taken from
## broom::glance()$df.residual of the first fit (here 80 - 4 = 76 for both).
pool_lm  <- pool(fit_lm)
pool_glm <- pool(fit_glm)

## Per-imputation estimates and model-based standard errors.
## The `se` column is exactly what pool() consumes: broom::tidy()$std.error,
## i.e. summary(fit)$coefficients[, "Std. Error"] = sqrt(diag(XtX^-1) * s^2)
## for lm (classical, homoskedastic; s^2 = RSS / df.residual) and
## sqrt(diag(XtWX^-1)) for the binomial glm (dispersion fixed at 1).
## This equals sqrt(diag(vcov(fit))) mathematically; for lm the two can differ
## in the last bit or so because vcov() uses sigma^2 = sqrt(s^2)^2 instead of
## s^2. The largest relative difference is recorded in versions.txt.
se_vcov_reldiff <- 0
per_imp <- function(fitobj) {
  fits <- getfit(fitobj)
  do.call(rbind, lapply(seq_along(fits), function(j) {
    f  <- fits[[j]]
    td <- broom::tidy(f)
    se_v <- unname(sqrt(diag(vcov(f))))
    stopifnot(identical(unname(coef(f)), td$estimate),
              identical(td$std.error,
                        unname(summary(f)$coefficients[, "Std. Error"])))
    se_vcov_reldiff <<- max(se_vcov_reldiff,
                            abs(td$std.error - se_v) / td$std.error)
    data.frame(imputation = j, term = td$term,
               estimate = td$estimate, se = td$std.error,
               stringsAsFactors = FALSE)
  }))
}

pooled_table <- function(p) {
  pp <- p$pooled
  data.frame(term = as.character(pp$term), m = pp$m, estimate = pp$estimate,
             ubar = pp$ubar, b = pp$b, t = pp$t, dfcom = pp$dfcom, df = pp$df,
             riv = pp$riv, lambda = pp$lambda, fmi = pp$fmi,
             stringsAsFactors = FALSE)
}

## Independent re-implementation of mice's formulas (see README.md); used only
## to verify that the documented formulas reproduce mice exactly.
rubin_by_hand <- function(est, se, dfcom) {
  m      <- length(est)
  qbar   <- mean(est)
  ubar   <- mean(se^2)
  b      <- var(est)
  t      <- ubar + (1 + 1/m) * b
  riv    <- (1 + 1/m) * b / ubar
  lambda <- (1 + 1/m) * b / t
  lam_df <- max(lambda, 1e-04)                   # floor used only for df
  dfold  <- (m - 1) / lam_df^2
  dfobs  <- (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lam_df)
  df     <- if (is.infinite(dfcom)) dfold else dfold * dfobs / (dfold + dfobs)
  fmi    <- (riv + 2 / (df + 3)) / (riv + 1)
  c(estimate = qbar, ubar = ubar, b = b, t = t, df = df,
    riv = riv, lambda = lambda, fmi = fmi)
}

check_pool <- function(pt, pi) {
  for (i in seq_len(nrow(pt))) {
    r <- pi[pi$term == pt$term[i], ]
    h <- rubin_by_hand(r$estimate, r$se, pt$dfcom[i])
    got <- unlist(pt[i, names(h)])
    rel <- max(abs(got - h) / pmax(abs(h), 1e-300))
    if (rel > 1e-14) stop("hand formulas disagree with mice for ", pt$term[i],
                          " (max rel diff ", rel, ")")
  }
  invisible(TRUE)
}

pi_lm  <- per_imp(fit_lm);  pt_lm  <- pooled_table(pool_lm)
pi_glm <- per_imp(fit_glm); pt_glm <- pooled_table(pool_glm)
check_pool(pt_lm, pi_lm)
check_pool(pt_glm, pi_glm)

write_csv17(pi_lm,  "per_imputation_lm.csv")
write_csv17(pi_glm, "per_imputation_glm.csv")
write_csv17(pt_lm,  "pooled_lm.csv")
write_csv17(pt_glm, "pooled_glm.csv")

## How precisely glm() converged (default control: epsilon = 1e-8). Reported
## so that a reimplementation refitting the glm knows what tolerance to use.
glm_tight_diff <- max(sapply(seq_len(m), function(j) {
  cj <- complete(imp, j)
  f0 <- glm(d ~ x1 + x2 + g, family = binomial, data = cj)
  f1 <- glm(d ~ x1 + x2 + g, family = binomial, data = cj,
            control = glm.control(epsilon = 1e-15, maxit = 100))
  max(abs(coef(f0) - coef(f1)),
      abs(sqrt(diag(vcov(f0))) - sqrt(diag(vcov(f1)))))
}))
## NB: the tight fits below use epsilon = 1e-14 (1e-15 above only measures
## the default fit's error).

## Extra golden files for the binomial model refitted to (near) machine
## precision, for reimplementations whose IRLS converges much tighter than R's
## default (epsilon = 1e-8 on the relative deviance change). Same data, same
## formulas; only the per-imputation inputs differ (by ~1e-5, see versions.txt).
fit_glm_tight <- with(imp, glm(d ~ x1 + x2 + g, family = binomial,
                               control = glm.control(epsilon = 1e-14, maxit = 100)))
stopifnot(all(sapply(getfit(fit_glm_tight), function(f) f$converged)))
pool_glm_tight <- pool(fit_glm_tight)
pi_glm_tight <- per_imp(fit_glm_tight); pt_glm_tight <- pooled_table(pool_glm_tight)
check_pool(pt_glm_tight, pi_glm_tight)
write_csv17(pi_glm_tight, "per_imputation_glm_tight.csv")
write_csv17(pt_glm_tight, "pooled_glm_tight.csv")

## ---------------------------------------------------------------------------
## 4. pool.scalar() on hand-chosen vectors
##    dfcom = n - k inside pool.scalar (no floor at 1); n = Inf -> df = df_old.
## ---------------------------------------------------------------------------
scalar_cases <- list(
  ## ordinary case: moderate between-imputation variance
  list(name = "moderate",
       Q = c(1.20, 1.35, 1.10, 1.28, 1.42),
       U = c(0.040, 0.045, 0.038, 0.042, 0.044), n = 100, k = 3),
  ## B = 0 exactly: all estimates identical -> lambda floored at 1e-4 for df
  list(name = "b_zero",
       Q = c(2.5, 2.5, 2.5, 2.5),
       U = c(0.10, 0.12, 0.11, 0.09), n = 50, k = 2),
  ## B dominates: between-imputation variance >> within
  list(name = "b_dominates",
       Q = c(-1.5, 0.8, 2.9, -0.3, 1.7, 4.2),
       U = c(0.010, 0.012, 0.009, 0.011, 0.010, 0.013), n = 30, k = 4),
  ## extra: default n = Inf (dfcom = Inf) -> df is the old Rubin (1987) df
  list(name = "dfcom_inf",
       Q = c(0.31, 0.27, 0.35, 0.22, 0.30, 0.33, 0.26),
       U = c(0.0049, 0.0052, 0.0047, 0.0050, 0.0051, 0.0048, 0.0053),
       n = Inf, k = 1)
)

scalar_rows <- lapply(scalar_cases, function(cs) {
  ps <- pool.scalar(cs$Q, cs$U, n = cs$n, k = cs$k)
  data.frame(case = cs$name,
             Q = paste(fmt(cs$Q), collapse = ";"),
             U = paste(fmt(cs$U), collapse = ";"),
             n = cs$n, k = cs$k, dfcom = cs$n - cs$k, m = ps$m,
             qbar = ps$qbar, ubar = ps$ubar, b = ps$b, t = ps$t,
             df = ps$df, r = ps$r, fmi = ps$fmi,
             stringsAsFactors = FALSE)
})
scalar_tab <- do.call(rbind, scalar_rows)
## verify pool.scalar against the hand formulas (dfcom = n - k)
for (i in seq_along(scalar_cases)) {
  cs <- scalar_cases[[i]]
  h  <- rubin_by_hand(cs$Q, sqrt(cs$U), cs$n - cs$k)
  got <- unlist(scalar_tab[i, c("qbar", "ubar", "b", "t", "df", "r", "fmi")])
  want <- h[c("estimate", "ubar", "b", "t", "df", "riv", "fmi")]
  rel <- max(abs(got - want) / pmax(abs(want), 1e-300))
  if (rel > 1e-14) stop("pool.scalar disagrees with hand formulas: ", cs$name)
}
write_csv17(scalar_tab, "pool_scalar.csv")

## ---------------------------------------------------------------------------
## 5. Versions
## ---------------------------------------------------------------------------
writeLines(c(R.version.string,
             paste("mice", as.character(packageVersion("mice"))),
             paste("broom", as.character(packageVersion("broom"))),
             paste("platform", R.version$platform),
             sprintf("missing x2: %d of %d", sum(is.na(dat$x2)), n),
             sprintf("max relative |tidy std.error - sqrt(diag(vcov()))|: %.3g",
                     se_vcov_reldiff),
             sprintf("max |default glm - tightly converged glm| (coef & se): %.3g",
                     glm_tight_diff)),
           "versions.txt")

cat(readLines("versions.txt"), sep = "\n")
cat("\nall files written; hand-derived formulas match mice::pool()\n")
