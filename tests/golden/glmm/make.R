## make.R -- golden reference values from R/lme4 for the Rust GLMM implementation.
##
## Run from this folder:   Rscript make.R
##
## Writes (all into the current working directory):
##   data.csv                      simulated data (hospital, black, x1, x2, y, yp, yc)
##   ri_laplace.json               glmer  y ~ x1 + x2 + black + (1 | hospital), logit, nAGQ = 1
##   ri_agq10.json                 same, nAGQ = 10 (adaptive Gauss-Hermite)
##   slope_laplace.json            glmer  y ~ x1 + x2 + black + (1 + black | hospital), logit, Laplace
##   probit_laplace.json           glmer  yp ~ x1 + x2 + black + (1 | hospital), probit, Laplace
##   lmm_ml.json                   lmer   yc ~ x1 + x2 + black + (1 | hospital), REML = FALSE
##   ri_laplace_devfun.json        lme4 stage-2 deviance function evaluated at fixed (theta, beta) points
##   ri_agq10_devfun.json          idem for nAGQ = 10
##   slope_laplace_devfun.json     idem for the random-slope model
##   lmm_ml_devfun.json            (extra) lmer profiled ML deviance evaluated at fixed theta points
##   versions.txt                  R / lme4 / Matrix / minqa / nloptr / numDeriv versions
##
## All doubles are written with sprintf("%.17g") so that they round-trip exactly.
## See README.md for the conventions (theta, deviance, SEs, conditional modes).

suppressPackageStartupMessages({
    library(lme4)      # 1.1-31 at time of writing
    library(numDeriv)  # only for an extra, more accurate (Richardson) Hessian
})

## ---------------------------------------------------------------------------
## 0. Small helpers: a hand-written JSON writer with %.17g numbers
## ---------------------------------------------------------------------------

fmt_num <- function(v) {
    ## doubles -> "%.17g"; NA/NaN/Inf -> null (JSON has no such literals)
    ifelse(is.finite(v), sprintf("%.17g", v), "null")
}
json_str <- function(s) {
    s <- gsub("\\\\", "\\\\\\\\", s)
    s <- gsub("\"", "\\\\\"", s)
    s <- gsub("\n", "\\\\n", s)
    s <- gsub("\t", "\\\\t", s)
    s <- gsub("\r", "\\\\r", s)
    paste0("\"", s, "\"")
}
## Mark a vector as "always a JSON array", even when it has length 1.
arr <- function(x) structure(x, json_array = TRUE)

to_json <- function(x, ind = 0L) {
    pad  <- strrep("  ", ind)
    pad1 <- strrep("  ", ind + 1L)
    if (is.null(x)) return("null")
    if (is.matrix(x)) {              # matrix -> array of rows
        rows <- vapply(seq_len(nrow(x)), function(i)
            to_json(arr(unname(x[i, ])), ind + 1L), "")
        return(paste0("[\n", paste0(pad1, rows, collapse = ",\n"), "\n", pad, "]"))
    }
    if (is.list(x)) {
        nms <- names(x)
        if (length(x) == 0L) return(if (is.null(nms)) "[]" else "{}")
        items <- vapply(x, to_json, "", ind = ind + 1L)
        if (!is.null(nms)) {
            items <- paste0(json_str(nms), ": ", items)
            return(paste0("{\n", paste0(pad1, items, collapse = ",\n"), "\n", pad, "}"))
        }
        return(paste0("[\n", paste0(pad1, items, collapse = ",\n"), "\n", pad, "]"))
    }
    is_arr <- isTRUE(attr(x, "json_array")) || length(x) != 1L
    vals <- if (is.logical(x)) ifelse(is.na(x), "null", ifelse(x, "true", "false"))
            else if (is.integer(x)) ifelse(is.na(x), "null", as.character(x))
            else if (is.numeric(x)) fmt_num(as.double(x))
            else if (is.character(x) || is.factor(x)) ifelse(is.na(x), "null", json_str(as.character(x)))
            else stop("to_json: unsupported type ", class(x))
    if (!is_arr) return(vals)
    paste0("[", paste(vals, collapse = ", "), "]")
}
write_json <- function(x, file) {
    writeLines(to_json(x), file)
    ## sanity check: re-read with jsonlite (if available) and compare a few numbers
    if (requireNamespace("jsonlite", quietly = TRUE)) invisible(jsonlite::fromJSON(file))
    cat("wrote", file, "\n")
}

## Evaluate an expression while collecting (and muffling) warnings/messages.
with_warnings <- function(expr) {
    w <- character(0)
    val <- withCallingHandlers(expr,
        warning = function(cond) { w <<- c(w, conditionMessage(cond)); invokeRestart("muffleWarning") },
        message = function(cond) { w <<- c(w, paste("message:", conditionMessage(cond))); invokeRestart("muffleMessage") })
    list(value = val, warnings = w)
}

## ---------------------------------------------------------------------------
## 1. Simulate the data
## ---------------------------------------------------------------------------

set.seed(10)
G <- 40L
## unequal hospital sizes: one tiny (5) and one large (120) hospital, the rest U(8, 90)
sizes <- sample(c(5L, 120L, as.integer(round(runif(G - 2L, 8, 90)))))
hospital <- rep(seq_len(G), times = sizes)
n <- length(hospital)

share_black <- plogis(rnorm(G, -0.8, 1.0))        # hospital-specific share of black patients
black <- rbinom(n, 1, share_black[hospital])
x1    <- rnorm(n)                                  # continuous N(0, 1)
x2    <- rbinom(n, 1, 0.4)                         # 0/1

## y: logit, correlated random intercept (sd 0.6) and random black slope (sd 0.5), corr 0.3
sd_int <- 0.6; sd_slp <- 0.5; rho <- 0.3
Sigma  <- matrix(c(sd_int^2, rho * sd_int * sd_slp, rho * sd_int * sd_slp, sd_slp^2), 2)
U      <- matrix(rnorm(2L * G), G) %*% chol(Sigma)
beta_y <- c(-1.2, 0.5, -0.4, 0.3)                  # (Intercept), x1, x2, black
eta_y  <- beta_y[1] + beta_y[2] * x1 + beta_y[3] * x2 + beta_y[4] * black +
          U[hospital, 1] + U[hospital, 2] * black
y      <- rbinom(n, 1, plogis(eta_y))

## yp: probit random intercept (sd 0.5)
u_p    <- rnorm(G, 0, 0.5)
eta_p  <- -0.3 + 0.4 * x1 - 0.3 * x2 + 0.2 * black + u_p[hospital]
yp     <- rbinom(n, 1, pnorm(eta_p))

## yc: gaussian, random intercept sd 0.8, residual sd 1
u_c    <- rnorm(G, 0, 0.8)
yc     <- 1 + 0.5 * x1 - 0.4 * x2 + 0.3 * black + u_c[hospital] + rnorm(n, 0, 1)

dat <- data.frame(hospital = hospital, black = as.integer(black), x1 = x1,
                  x2 = as.integer(x2), y = as.integer(y), yp = as.integer(yp), yc = yc)

ev <- tapply(dat$y, dat$hospital, sum)
stopifnot(any(ev == 0))                            # at least one hospital with zero events
cat("n =", n, " sizes:", range(sizes), " hospitals with zero y-events:",
    paste(names(ev)[ev == 0], collapse = ","), "\n")

## write with %.17g so the Rust side reads exactly the same doubles
out <- data.frame(hospital = dat$hospital, black = dat$black, x1 = sprintf("%.17g", dat$x1),
                  x2 = dat$x2, y = dat$y, yp = dat$yp, yc = sprintf("%.17g", dat$yc))
write.csv(out, "data.csv", row.names = FALSE, quote = FALSE)
## round-trip check: what we fit is exactly what is in the file
dat <- read.csv("data.csv")
stopifnot(identical(dat$x1, x1), identical(dat$yc, yc))
cat("wrote data.csv\n")

## ---------------------------------------------------------------------------
## 2. Fitting with tight tolerances
## ---------------------------------------------------------------------------
## tolPwrss: convergence tolerance of the inner PIRLS loop (default 1e-7). It is
## tightened so that the objective is evaluated at the exact conditional mode;
## otherwise the optimizer sees O(1e-8) noise in the deviance.
TOL_PWRSS <- 1e-12

## Why a custom optimizer: the deviance is only computable to ~1e-12 absolute
## (floating-point noise of a sum over ~2000 observations), so ANY derivative-free
## optimizer (bobyqa, nlopt, Nelder-Mead) can only pin the parameters down to
## ~sqrt(1e-12 / curvature) ~ 1e-7 absolute, whatever rhoend / xtol_rel says.
## To get references accurate well beyond 1e-6 relative we therefore
##   (1) run BOBYQA (minqa, or nloptr for the cross-check) with very tight tolerances,
##   (2) polish with Newton steps p <- p - H^{-1} g, where g and H are
##       Richardson-extrapolated finite differences (numDeriv, relative step 1e-2,
##       4 halvings) of lme4's own deviance function (devfun noise ~3e-12 ->
##       gradient error ~1e-8 -> parameter error ~1e-10).
## lme4 then builds the fitted object at exactly the returned parameters
## (optwrap() re-evaluates devfun(opt$par) before mkMerMod()).
NEWTON_LOG <- new.env()
newton_polish <- function(fn, p, lower, maxit = 8L) {
    f <- fn(p)
    steps <- numeric(0)
    if (any(p - lower < 1e-3))          # at/near a boundary: Newton not appropriate
        return(list(par = p, fval = f, steps = steps, grad = NULL, note = "skipped (near boundary)"))
    g <- NULL
    for (it in seq_len(maxit)) {
        g <- numDeriv::grad(fn, p, method.args = list(eps = 1e-6, d = 1e-2, r = 4, v = 2))
        H <- numDeriv::hessian(fn, p, method.args = list(eps = 1e-4, d = 1e-2, r = 4, v = 2))
        st <- tryCatch(solve(H, g), error = function(e) rep(NA_real_, length(p)))
        if (anyNA(st)) break
        pn <- p - st
        if (any(pn < lower)) break
        fn_new <- fn(pn)
        if (fn_new > f + 1e-9) break     # never accept a (beyond noise) worse point
        p <- pn; f <- fn_new; steps <- c(steps, max(abs(st)))
        if (max(abs(st)) < 1e-9) break   # below this the steps are pure noise
    }
    g <- numDeriv::grad(fn, p, method.args = list(eps = 1e-6, d = 1e-2, r = 4, v = 2))
    list(par = p, fval = fn(p), steps = steps, grad = g, note = "ok")
}
## Optimizer in the calling convention lme4's optwrap() expects.
make_optimizer <- function(base = c("minqa", "nloptr")) {
    base <- match.arg(base)
    function(par, fn, lower, upper, control = list(), ...) {
        if (base == "minqa") {
            o <- minqa::bobyqa(par, fn, lower, upper,
                               control = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))
            p0 <- o$par; msg <- o$msg; nf <- o$feval; conv0 <- o$ierr
        } else {
            o <- nloptr::nloptr(par, fn, lb = lower, ub = upper,
                                opts = list(algorithm = "NLOPT_LN_BOBYQA", xtol_rel = 1e-14,
                                            ftol_abs = 1e-14, ftol_rel = 1e-15, maxeval = 1e5))
            p0 <- o$solution; msg <- o$message; nf <- o$iterations; conv0 <- if (o$status > 0) 0L else o$status
        }
        f0 <- fn(p0)
        np <- newton_polish(fn, p0, lower)
        NEWTON_LOG$last <- list(base = base, base_message = msg, base_feval = nf, base_par = p0,
                                base_fval = f0, newton_steps = np$steps, newton_note = np$note,
                                final_par = np$par, final_fval = np$fval,
                                richardson_gradient_at_final = np$grad)
        list(par = np$par, fval = np$fval, value = np$fval, convergence = conv0, feval = nf,
             message = paste0(msg, " | Newton polish: ", np$note, ", ", length(np$steps), " step(s)"))
    }
}
opt_minqa  <- make_optimizer("minqa")
opt_nloptr <- make_optimizer("nloptr")
ctrl_main  <- glmerControl(optimizer = opt_minqa,  tolPwrss = TOL_PWRSS)
ctrl_cross <- glmerControl(optimizer = opt_nloptr, tolPwrss = TOL_PWRSS)
lctrl_main  <- lmerControl(optimizer = opt_minqa)
lctrl_cross <- lmerControl(optimizer = opt_nloptr)
## plain lme4 bobyqa with tight tolerances (no Newton) -- only reported for comparison
ctrl_plain  <- glmerControl(optimizer = "bobyqa", tolPwrss = TOL_PWRSS,
                            optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))
lctrl_plain <- lmerControl(optimizer = "bobyqa",
                           optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))

pars_of <- function(fit) c(getME(fit, "theta"), fixef(fit))

## Main fit + two cross-checks (independent optimizer path; plain lme4 bobyqa).
fit_tight <- function(fun, args, ctrl_main, ctrl_cross, ctrl_plain) {
    f1 <- with_warnings(do.call(fun, c(args, list(control = ctrl_main))))
    log1 <- NEWTON_LOG$last
    f2 <- with_warnings(do.call(fun, c(args, list(control = ctrl_cross))))
    log2 <- NEWTON_LOG$last
    f3 <- with_warnings(do.call(fun, c(args, list(control = ctrl_plain))))
    m2 <- function(f) -2 * c(logLik(f$value))
    cc <- list(
        note = "main = minqa::bobyqa(rhoend 1e-12) + Newton polish; cross = nloptr BOBYQA(xtol_rel 1e-14) + Newton polish; plain = lme4 'bobyqa' with rhoend 1e-12 and no polish",
        m2loglik_main = m2(f1), m2loglik_cross = m2(f2), m2loglik_plain = m2(f3),
        params_main = arr(pars_of(f1$value)), params_cross = arr(pars_of(f2$value)),
        params_plain = arr(pars_of(f3$value)),
        max_abs_param_diff_main_vs_cross = max(abs(pars_of(f1$value) - pars_of(f2$value))),
        max_abs_param_diff_main_vs_plain = max(abs(pars_of(f1$value) - pars_of(f3$value))),
        newton_main = log1, newton_cross = log2,
        warnings_cross = arr(f2$warnings), warnings_plain = arr(f3$warnings),
        plain_lme4_messages = arr(as.character(unlist(f3$value@optinfo$conv$lme4$messages))),
        plain_fd_gradient = if (!is.null(f3$value@optinfo$derivs)) arr(f3$value@optinfo$derivs$gradient) else NULL)
    list(fit = f1$value, warnings = f1$warnings, crosscheck = cc)
}

## ---------------------------------------------------------------------------
## 3. Extraction of everything we want to compare against
## ---------------------------------------------------------------------------

## A fresh stage-2 deviance function for a glmer spec (see section 5 for its semantics).
mk_devfun <- function(s) glmer(s$f, data = dat, family = s$fam, nAGQ = s$nAGQ,
                               control = ctrl_plain, devFunOnly = TRUE)

## Independent plain-R implementation of lme4's GLMM objective
## (per hospital: Fisher scoring -- = Newton for the logit link -- to the exact
## conditional mode of u, |step| < 1e-14, then Laplace, or adaptive Gauss-Hermite
## for nAGQ > 1 with a scalar random effect). Returns -2 log L (full Bernoulli
## log-likelihood, no constants dropped). As in lme4, the Laplace log-determinant
## uses the working (Fisher) weights W = mu_eta^2 / (mu (1 - mu)), which for the
## canonical logit link equal the observed-information weights mu (1 - mu).
indep_dev <- function(pars, q, nAGQ = 1L, resp = "y", link = "logit") {
    lf <- make.link(link)
    nth <- q * (q + 1) / 2
    L <- matrix(0, q, q); L[lower.tri(L, diag = TRUE)] <- pars[seq_len(nth)]
    X <- cbind(1, dat$x1, dat$x2, dat$black)
    eta0 <- drop(X %*% pars[-seq_len(nth)])
    if (nAGQ > 1L) {                       # Gauss-Hermite rule (weight exp(-x^2)), Golub-Welsch
        J <- matrix(0, nAGQ, nAGQ)
        for (i in 1:(nAGQ - 1)) J[i, i + 1] <- J[i + 1, i] <- sqrt(i / 2)
        e <- eigen(J, symmetric = TRUE); ghx <- e$values; ghw <- sqrt(pi) * e$vectors[1, ]^2
    }
    tot <- 0
    hs  <- sort(unique(dat$hospital))
    B   <- matrix(NA_real_, length(hs), q)
    for (h in hs) {
        i  <- dat$hospital == h; yy <- dat[[resp]][i]; e0 <- eta0[i]
        Z  <- cbind(1, dat$black[i])[, seq_len(q), drop = FALSE] %*% L     # Z Lambda
        wts <- function(u) {
            eta <- e0 + drop(Z %*% u); mu <- lf$linkinv(eta); me <- lf$mu.eta(eta)
            list(mu = mu, w = me^2 / (mu * (1 - mu)), s = me / (mu * (1 - mu)))
        }
        u  <- rep(0, q)
        for (k in 1:500) {
            W  <- wts(u)
            H  <- crossprod(Z, Z * W$w) + diag(q)
            st <- drop(solve(H, crossprod(Z, W$s * (yy - W$mu)) - u)); u <- u + st
            if (max(abs(st)) < 1e-14) break
        }
        W <- wts(u); H <- crossprod(Z, Z * W$w) + diag(q)
        B[match(h, hs), ] <- L %*% u
        ## log joint without the -q/2 log(2 pi) of the N(0, I) density
        f <- function(uu) sum(dbinom(yy, 1, lf$linkinv(e0 + drop(Z %*% uu)), log = TRUE)) - sum(uu^2) / 2
        if (nAGQ <= 1L) {
            tot <- tot + f(u) - 0.5 * c(determinant(H)$modulus)
        } else {                            # q == 1 only
            sc <- sqrt(2 / H[1, 1]); z <- u + sc * ghx
            v  <- vapply(z, f, 0); m <- max(v)
            tot <- tot + m + log(sum(ghw * exp(v - m + ghx^2)) * sc / sqrt(2 * pi))
        }
    }
    structure(-2 * tot, b = B)
}

## "Exact" Laplace objective in lme4's convention. lme4's PIRLS stops when the
## relative change of the penalized deviance is < tolPwrss and then returns
## devres + |u|^2 + log|L|^2 with L the Cholesky factor computed from the weights
## of the *previous* iterate. The final u is (quadratically) exact, but log|L|^2
## carries an O(previous step) error: ~1e-9 here for logit, up to ~1e-5 away from
## the optimum, ~1e-6 for probit (linear convergence of Fisher scoring), and
## ~1e-4 with the default tolPwrss = 1e-7. This wrapper refreshes L at the final
## weights, which reproduces indep_dev() to ~1e-11 for the logit models (for probit
## the final u itself is only converged to ~1e-8, so it is not enough there).
mk_exact_devfun <- function(s) {
    df  <- mk_devfun(s)
    rho <- environment(df)
    function(p) {
        df(p)
        rho$pp$updateXwts(rho$resp$sqrtXwt)
        rho$pp$updateDecomp(NULL)
        rho$resp$Laplace(rho$pp$ldL2(), rho$pp$ldRX2(), rho$pp$sqrL(1))
    }
}

extract <- function(name, s, res, hess_richardson = TRUE) {
    formula_txt <- deparse(s$f); family_txt <- s$famtxt; nAGQ <- s$nAGQ
    fit  <- res$fit
    glmm <- isGLMM(fit)
    fe   <- fixef(fit)
    th   <- getME(fit, "theta")

    ## SEs: default vcov (for glmer 1.1-31: finite-difference Hessian of the deviance
    ## w.r.t. (theta, beta) if available) and the PIRLS/RX-based one.
    V_def <- as.matrix(vcov(fit))
    V_rx_w <- with_warnings(tryCatch(as.matrix(vcov(fit, use.hessian = FALSE)), error = function(e) NULL))
    V_rx  <- V_rx_w$value
    V_h   <- tryCatch(as.matrix(vcov(fit, use.hessian = TRUE)),  error = function(e) NULL)

    ## Extra: an accurate (Richardson-extrapolated) Hessian of the same devfun, for
    ## checking analytic/AD Hessians. SE = sqrt(diag( [ (H/2)^{-1} ]_beta )).
    ## Relative steps d = 0.05 (reported), and d = 0.01, 0.1 as a stability check;
    ## r = 4 halvings. Small steps are dominated by the ~3e-12 devfun noise.
    rich <- NULL
    if (glmm && hess_richardson) {
        df <- mk_devfun(s)
        p  <- c(th, fe)
        ib <- -seq_along(th)
        hs <- lapply(c(0.05, 0.01, 0.10), function(d)
            numDeriv::hessian(df, p, method.args = list(eps = 1e-4, d = d, r = 4, v = 2)))
        Vs <- lapply(hs, function(H) 2 * solve(H))
        ses <- sapply(Vs, function(V) sqrt(diag(V)[ib]))
        H <- hs[[1]]; Vr <- Vs[[1]]
        rich <- list(note = "numDeriv::hessian (Richardson, d=0.05, r=4) of lme4's stage-2 devfun at the optimum, params c(theta, beta); vcov_beta = [2 H^-1]_beta,beta. max_rel_spread = max relative difference of the SEs over d in {0.01, 0.05, 0.1} (accuracy indicator)",
                     hessian = H, se_fixef = arr(unname(ses[, 1])),
                     vcov_fixef = unname(Vr[ib, ib]),
                     se_fixef_d0.01 = arr(unname(ses[, 2])),
                     se_fixef_d0.1 = arr(unname(ses[, 3])),
                     max_rel_spread = max(abs(ses / ses[, 1] - 1)),
                     se_all_params_theta_then_beta = arr(unname(sqrt(diag(Vr)))))
    }

    ## Extra for Laplace GLMMs: the optimum of the *exact* Laplace objective
    ## (lme4's convention, but with the inner loop fully converged; computed by
    ## indep_dev(), see above), found by Newton from lme4's optimum, plus its
    ## Richardson-Hessian SEs and the conditional modes b = Lambda u there.
    exact <- NULL
    if (glmm && nAGQ == 1) {
        q    <- length(fit@cnms$hospital)
        rv   <- all.vars(s$f)[1]; lk <- family(fit)$link
        exf  <- function(p) indep_dev(unname(p), q, 1L, resp = rv, link = lk)
        p0   <- c(th, fe)
        low  <- c(getME(fit, "lower"), rep(-Inf, length(fe)))
        np   <- newton_polish(exf, p0, low)
        ib   <- -seq_along(th)
        hs   <- lapply(c(0.05, 0.01, 0.10), function(d)
            numDeriv::hessian(exf, np$par, method.args = list(eps = 1e-4, d = d, r = 4, v = 2)))
        ses  <- sapply(hs, function(H) sqrt(diag(2 * solve(H))[ib]))
        bex  <- attr(indep_dev(unname(np$par), q, 1L, resp = rv, link = lk), "b")
        exact <- list(
            note = "optimum of the exact Laplace objective in lme4's convention (Fisher weights in the log-det; inner Fisher scoring/Newton iterated to |step| < 1e-14; plain-R implementation indep_dev() in make.R); params = c(theta, beta)",
            params = arr(unname(np$par)),
            theta = arr(unname(np$par[seq_along(th)])),
            fixef = arr(unname(np$par[ib])),
            minus2loglik = np$fval,
            minus2loglik_at_lme4_optimum = exf(p0),
            lme4_devfun_minus_exact_at_lme4_optimum = -2 * c(logLik(fit)) - exf(p0),
            max_abs_param_diff_vs_lme4 = max(abs(np$par - p0)),
            newton_note = np$note,
            newton_steps = arr(np$steps),
            richardson_gradient_at_final = arr(np$grad),
            se_fixef_richardson_d0.05 = arr(unname(ses[, 1])),
            se_fixef_max_rel_spread_d_0.01_0.05_0.1 = max(abs(ses / ses[, 1] - 1)),
            ranef_mode = setNames(lapply(seq_len(q), function(j) arr(bex[, j])), colnames(ranef(fit)$hospital)))
        ## consistency: at lme4's optimum the exact modes equal ranef() (both are fully converged u)
        bchk <- attr(indep_dev(unname(p0), q, 1L, resp = rv, link = lk), "b")
        exact$max_abs_ranef_diff_at_lme4_optimum <- max(abs(bchk - as.matrix(ranef(fit)$hospital)))
    }

    vc   <- as.data.frame(VarCorr(fit))
    rfx  <- ranef(fit, condVar = TRUE)$hospital
    pv   <- attr(rfx, "postVar")
    if (is.null(pv)) pv <- attr(rfx, "condVar")
    q    <- ncol(rfx)
    cond_sd <- sapply(seq_len(q), function(j) sqrt(pv[j, j, ]))
    cond_sd <- matrix(cond_sd, ncol = q, dimnames = list(NULL, colnames(rfx)))

    cmp  <- getME(fit, "devcomp")$cmp
    dims <- getME(fit, "devcomp")$dims
    oi   <- fit@optinfo

    ll <- logLik(fit)
    list(
        model = name,
        formula = formula_txt,
        family = family_txt,
        nAGQ = as.integer(nAGQ),
        REML = if (!glmm) FALSE else NULL,
        nobs = nobs(fit),
        ngroups = as.integer(ngrps(fit)[["hospital"]]),
        fixef = list(names = arr(names(fe)), estimate = arr(unname(fe))),
        se_fixef_vcov_default = arr(unname(sqrt(diag(V_def)))),
        se_fixef_vcov_use_hessian_FALSE = if (is.null(V_rx)) NULL else arr(unname(sqrt(diag(V_rx)))),
        se_fixef_vcov_use_hessian_TRUE  = if (is.null(V_h))  NULL else arr(unname(sqrt(diag(V_h)))),
        vcov_fixef_default = unname(V_def),
        vcov_fixef_use_hessian_FALSE = if (is.null(V_rx)) NULL else unname(V_rx),
        vcov_use_hessian_FALSE_warnings = arr(V_rx_w$warnings),
        vcov_default_source = if (glmm && !is.null(oi$derivs$Hessian)) "finite-difference Hessian of deviance (optinfo$derivs$Hessian)" else "RX from PIRLS/penalized LS (sigma^2 * pp$unsc())",
        richardson_hessian = rich,
        exact_laplace = exact,
        theta = list(names = arr(names(th)), value = arr(unname(th))),
        lower = arr(getME(fit, "lower")),
        varcorr = list(grp = arr(vc$grp), var1 = arr(vc$var1), var2 = arr(vc$var2),
                       vcov = arr(vc$vcov), sdcor = arr(vc$sdcor)),
        sigma = sigma(fit),            # 1 for binomial GLMMs; residual SD for the LMM
        minus2loglik = -2 * c(ll),
        loglik = c(ll),
        df_loglik = attr(ll, "df"),
        deviance = deviance(fit),      # NB: for glmer this is sum(dev.resid^2), NOT -2 logLik
        AIC = AIC(fit), BIC = BIC(fit),
        devcomp_cmp = as.list(cmp),
        devcomp_dims = as.list(dims),
        ranef = list(
            hospital = arr(as.integer(rownames(rfx))),
            columns = arr(colnames(rfx)),
            mode = lapply(as.list(rfx), function(v) arr(v)),         # b = Lambda u, per column (conditional modes)
            cond_sd = setNames(lapply(seq_len(q), function(j) arr(unname(cond_sd[, j]))), colnames(rfx)), # sqrt(diag(postVar))
            postVar = if (q > 1) lapply(seq_len(dim(pv)[3]), function(g) pv[, , g]) else NULL),
        u_spherical = arr(unname(getME(fit, "u"))),                   # lme4's spherical u (b = Lambda u)
        optinfo = list(
            optimizer = if (is.function(oi$optimizer)) "custom: minqa::bobyqa(rhobeg 0.2, rhoend 1e-12) + Newton polish (numDeriv Richardson grad/Hessian of devfun)" else as.character(oi$optimizer),
            control = oi$control,
            feval = oi$feval,
            conv_opt = oi$conv$opt,
            lme4_messages = arr(as.character(unlist(oi$conv$lme4$messages))),
            opt_message = arr(as.character(oi$message)),
            warnings_in_optinfo = arr(as.character(unlist(oi$warnings))),
            captured_warnings = arr(res$warnings),
            derivs_gradient = if (!is.null(oi$derivs)) arr(oi$derivs$gradient) else NULL,
            derivs_hessian  = if (!is.null(oi$derivs)) oi$derivs$Hessian else NULL,
            par = arr(oi$val), fval = oi$fval,
            tolPwrss = if (glmm) TOL_PWRSS else NULL),
        crosscheck = res$crosscheck
    )
}

## ---------------------------------------------------------------------------
## 4. Fits a-e
## ---------------------------------------------------------------------------

fits <- list()
specs <- list(
    ri_laplace = list(fun = "glmer", f = y ~ x1 + x2 + black + (1 | hospital),
                      fam = binomial(), famtxt = "binomial(logit)", nAGQ = 1),
    ri_agq10   = list(fun = "glmer", f = y ~ x1 + x2 + black + (1 | hospital),
                      fam = binomial(), famtxt = "binomial(logit)", nAGQ = 10),
    slope_laplace = list(fun = "glmer", f = y ~ x1 + x2 + black + (1 + black | hospital),
                         fam = binomial(), famtxt = "binomial(logit)", nAGQ = 1),
    probit_laplace = list(fun = "glmer", f = yp ~ x1 + x2 + black + (1 | hospital),
                          fam = binomial(link = "probit"), famtxt = "binomial(probit)", nAGQ = 1),
    lmm_ml = list(fun = "lmer", f = yc ~ x1 + x2 + black + (1 | hospital),
                  fam = NULL, famtxt = "gaussian(identity)", nAGQ = 0)
)

for (nm in names(specs)) {
    s <- specs[[nm]]
    cat("fitting", nm, "...\n")
    if (s$fun == "glmer") {
        args <- list(formula = s$f, data = dat, family = s$fam, nAGQ = s$nAGQ)
        res  <- fit_tight(glmer, args, ctrl_main, ctrl_cross, ctrl_plain)
    } else {
        args <- list(formula = s$f, data = dat, REML = FALSE)
        res  <- fit_tight(lmer, args, lctrl_main, lctrl_cross, lctrl_plain)
    }
    fits[[nm]] <- res$fit
    print(summary(res$fit)$coefficients)
    cat("theta:", sprintf("%.10g", getME(res$fit, "theta")), " -2logLik:",
        sprintf("%.12f", -2 * c(logLik(res$fit))), "\n")
    if (length(res$warnings)) cat("WARNINGS:", res$warnings, sep = "\n  ")
    cat("crosscheck max|dpar| main vs cross:",
        res$crosscheck$max_abs_param_diff_main_vs_cross,
        " main vs plain lme4 bobyqa:", res$crosscheck$max_abs_param_diff_main_vs_plain, "\n")
    write_json(extract(nm, s, res), paste0(nm, ".json"))
}

## ---------------------------------------------------------------------------
## 5. Deviance function at fixed parameter points
## ---------------------------------------------------------------------------
## glmer(..., devFunOnly = TRUE) with nAGQ >= 1 returns lme4's *stage-2* deviance
## function f(pars), pars = c(theta, beta) (theta first, in getME(, "theta") order,
## then the fixed effects in column order of X). It runs PIRLS over u only
## (beta enters via the offset) and returns the Laplace (nAGQ = 1) or AGQ (nAGQ > 1)
## approximation to -2 log L. The function is stateful (PIRLS warm-starts from the
## previous u), so we evaluate every point in a *fresh* devfun and also sequentially
## in one devfun, and report the discrepancy.

devfun_points <- function(nm, s, pts) {
    mk <- function() mk_devfun(s)
    fit <- fits[[nm]]
    opt <- pars_of(fit)
    pts <- c(list(optimum = opt), pts)
    fresh <- vapply(pts, function(p) mk()(p), 0)
    df1 <- mk()
    seqv <- vapply(rev(pts), function(p) df1(p), 0)[names(pts)]   # reverse order, warm starts
    q    <- length(fit@cnms$hospital)
    ind  <- vapply(pts, function(p) c(indep_dev(unname(p), q, s$nAGQ)), 0)
    exf  <- if (s$nAGQ == 1) mk_exact_devfun(s) else NULL
    refr <- if (s$nAGQ == 1) vapply(pts, function(p) exf(p), 0) else NULL
    m2ll <- -2 * c(logLik(fit))
    cat(sprintf("%s: max |lme4 devfun - independent R implementation| = %.3g\n", nm, max(abs(fresh - ind))))
    cat(sprintf("%s devfun at optimum %.12f vs -2logLik %.12f (diff %.3g); max |fresh - sequential| = %.3g\n",
                nm, fresh[["optimum"]], m2ll, fresh[["optimum"]] - m2ll, max(abs(fresh - seqv))))
    stopifnot(abs(fresh[["optimum"]] - m2ll) < 1e-8 * abs(m2ll))
    list(
        model = nm, formula = deparse(s$f), family = s$famtxt, nAGQ = as.integer(s$nAGQ),
        parameterization = "pars = c(theta, beta); theta = getME(fit,'theta') (relative Cholesky factor, column-wise lower triangle), beta in order of param_names",
        param_names = arr(c(paste0("theta[", names(getME(fit, "theta")), "]"), names(fixef(fit)))),
        tolPwrss = TOL_PWRSS,
        minus2loglik_fit = m2ll,
        points = lapply(names(pts), function(k) list(label = k, pars = arr(unname(pts[[k]])),
                                                     value = fresh[[k]],
                                                     value_sequential = seqv[[k]],
                                                     value_independent_exact = ind[[k]],
                                                     value_lme4_refreshed_logdet = if (is.null(refr)) NULL else refr[[k]])),
        note_independent = "value_independent_exact: plain-R Laplace/AGQ at the exact (Newton, |step|<1e-14) conditional mode; lme4 'value' differs by O(1e-9)..O(1e-5) because lme4 uses log|L|^2 from the previous PIRLS iterate; value_lme4_refreshed_logdet: lme4's own machinery with L refreshed at the final weights (nAGQ = 1 only; lme4's AGQ code is already exact)",
        max_abs_diff_fresh_vs_sequential = max(abs(fresh - seqv))
    )
}

## Points: perturbations away from the optimum, and a boundary point (theta = 0 or L22 = 0).
o <- pars_of(fits$ri_laplace)
pts_ri <- list(
    p1 = c(0.7 * o[1], o[-1] + c(0.10, -0.05, 0.08, -0.10)),
    p2 = c(1.5 * o[1], o[-1] + c(-0.20, 0.10, -0.10, 0.15)),
    p3_theta0 = c(0, o[-1])                                 # boundary: no random effect
)
o <- pars_of(fits$ri_agq10)
pts_agq <- list(
    p1 = c(0.7 * o[1], o[-1] + c(0.10, -0.05, 0.08, -0.10)),
    p2 = c(1.5 * o[1], o[-1] + c(-0.20, 0.10, -0.10, 0.15)),
    p3 = c(0.25, -1.0, 0.4, -0.3, 0.5)                      # arbitrary round values
)
o <- pars_of(fits$slope_laplace)   # (L11, L21, L22, b0, bx1, bx2, bblack)
pts_slope <- list(
    p1 = c(0.8 * o[1:3], o[-(1:3)] + c(0.10, -0.05, 0.08, -0.10)),
    p2 = c(0.5, -0.3, 0.4, -1.0, 0.4, -0.3, 0.5),           # negative L21
    p3_L22_0 = c(o[1], o[2], 0, o[-(1:3)])                  # boundary: singular covariance
)

for (nm in c("ri_laplace", "ri_agq10", "slope_laplace")) {
    pts <- switch(nm, ri_laplace = pts_ri, ri_agq10 = pts_agq, slope_laplace = pts_slope)
    write_json(devfun_points(nm, specs[[nm]], pts), paste0(nm, "_devfun.json"))
}

## Extra: lmer profiled ML deviance as a function of theta (= sigma_u / sigma) only.
{
    s   <- specs$lmm_ml
    dfl <- lmer(s$f, data = dat, REML = FALSE, devFunOnly = TRUE)
    th  <- getME(fits$lmm_ml, "theta")
    pts <- list(optimum = unname(th), p1 = 0.5 * unname(th), p2 = 2 * unname(th), p3_theta0 = 0)
    vals <- vapply(pts, dfl, 0)
    m2ll <- -2 * c(logLik(fits$lmm_ml))
    cat(sprintf("lmm_ml devfun at optimum %.12f vs -2logLik %.12f\n", vals[["optimum"]], m2ll))
    stopifnot(abs(vals[["optimum"]] - m2ll) < 1e-8 * abs(m2ll))
    write_json(list(
        model = "lmm_ml", formula = deparse(s$f), REML = FALSE,
        parameterization = "pars = theta = sigma_u / sigma (relative); beta and sigma are profiled out; value = ML deviance -2 log L at the profiled beta, sigma",
        minus2loglik_fit = m2ll,
        points = lapply(names(pts), function(k) list(label = k, pars = arr(pts[[k]]), value = vals[[k]]))),
        "lmm_ml_devfun.json")
}

## ---------------------------------------------------------------------------
## 6. Versions
## ---------------------------------------------------------------------------
writeLines(c(
    R.version.string,
    paste("lme4", as.character(packageVersion("lme4"))),
    paste("Matrix", as.character(packageVersion("Matrix"))),
    paste("minqa", as.character(packageVersion("minqa"))),
    paste("nloptr", as.character(packageVersion("nloptr"))),
    paste("numDeriv", as.character(packageVersion("numDeriv"))),
    paste("jsonlite", if (requireNamespace("jsonlite", quietly = TRUE)) as.character(packageVersion("jsonlite")) else "not installed (not needed)"),
    paste("platform", R.version$platform),
    paste("BLAS", if (!is.null(extSoftVersion()["BLAS"])) extSoftVersion()[["BLAS"]] else "?")
), "versions.txt")
cat("wrote versions.txt\ndone.\n")
