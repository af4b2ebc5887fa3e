# R mice on the same imputation problem as healthgap's [imputation]: the
# cohort's analysis variables (ejection_fraction pmm, diabetes logreg,
# insurance polyreg incomplete), every outcome and each hospital's observed
# means of the imputed variables and outcomes as predictors, imputed within
# each group (race). Usage: Rscript bench/peers_mice.R cohort.csv M MAXIT
# Prints "RESULT mice_<m>_<maxit> <seconds>". R and mice from Debian
# (r-base-core, r-cran-mice); bench/run.sh installs them.
suppressPackageStartupMessages(library(mice))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], na.strings = c("", "NA"))
m <- as.integer(args[2]); maxit <- as.integer(args[3])
d <- d[d$race %in% c("White", "Black", "Hispanic") & d$age >= 18, ]
vars <- c("age", "female", "diabetes", "dialysis", "heart_failure", "lung_disease", "pad",
          "prior_mi", "ejection_fraction", "status", "adi", "insurance",
          "death_30d", "major_morbidity", "los_days")
x <- d[, vars]
x$status <- factor(x$status); x$insurance <- factor(x$insurance)
x$diabetes <- factor(x$diabetes)
# Hospital means of the observed values (the "means" cluster term).
hmean <- function(v) ave(v, d$hospital_id, FUN = function(z) mean(z, na.rm = TRUE))
x$h_ef <- hmean(d$ejection_fraction); x$h_diab <- hmean(d$diabetes)
for (lvl in setdiff(levels(x$insurance), levels(x$insurance)[1]))
  x[[paste0("h_ins_", lvl)]] <- hmean(as.numeric(d$insurance == lvl))
x$h_death <- hmean(d$death_30d); x$h_morb <- hmean(d$major_morbidity); x$h_los <- hmean(d$los_days)
meth <- make.method(x)
meth[c("ejection_fraction", "diabetes", "insurance")] <- c("pmm", "logreg", "polyreg")
t0 <- Sys.time()
for (g in c("White", "Black", "Hispanic")) {
  imp <- mice(x[d$race == g, ], m = m, maxit = maxit, method = meth, printFlag = FALSE, seed = 1)
}
secs <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
cat(sprintf("RESULT mice_%d_%d %.3f\n", m, maxit, secs))
