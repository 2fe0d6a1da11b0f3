#!/usr/bin/Rscript
# stockcast peer harness, R side: forecast every series of the exported
# splits with R forecast (ets, auto.arima, croston), SBA and TSB, and
# Prophet, and write forecasts in the CSV the Go backtest scores
# (pkg/backtest.ReadForecasts). Usage:
#   peers.R <splits dir> <out.csv> <models, comma-separated>
# Each series is cut at its first sale (as the M5 scales are) and a
# forecast uses only the days before its origin.
suppressPackageStartupMessages(library(forecast))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; out <- args[2]
models <- strsplit(if (length(args) >= 3) args[3] else "ets,croston,sba,tsb", ",")[[1]]
levels <- c(0.005, 0.01, 0.025, 0.05, 0.165, 0.25, 0.5, 0.75, 0.835, 0.95, 0.975, 0.99, 0.995)
qnames <- paste0("q", format(levels, drop0trailing = TRUE, scientific = FALSE, trim = TRUE))

d <- read.csv(file.path(dir, "series.csv"), stringsAsFactors = FALSE, na.strings = "NA")
origins <- read.csv(file.path(dir, "origins.csv"), stringsAsFactors = FALSE)
ids <- unique(d$id)
byid <- split(d$value, factor(d$id, levels = ids))
dates <- split(d$date, factor(d$id, levels = ids))

# intervals: forecast's level L gives the (1-L)/2 and (1+L)/2 quantiles
ivl <- c(50, 67, 90, 95, 98, 99)
fromIntervals <- function(fc) {
  k <- length(ivl)
  lo <- pmax(matrix(as.numeric(fc$lower), ncol = k), 0)
  hi <- pmax(matrix(as.numeric(fc$upper), ncol = k), 0)
  m <- pmax(as.numeric(fc$mean), 0)
  # columns in level order 0.005 ... 0.995
  cbind(lo[, 6], lo[, 5], lo[, 4], lo[, 3], lo[, 2], lo[, 1], m, hi[, 1], hi[, 2], hi[, 3], hi[, 4], hi[, 5], hi[, 6])
}

croston_fc <- function(y, h, alpha = 0.1, type = "croston") {
  nz <- which(y > 0)
  if (length(nz) < 2) return(rep(mean(y), h))
  z <- y[nz]; p <- diff(c(0, nz))
  zl <- z[1]; pl <- p[1]
  for (i in seq_along(z)[-1]) { zl <- zl + alpha * (z[i] - zl); pl <- pl + alpha * (p[i] - pl) }
  f <- zl / pl
  if (type == "sba") f <- f * (1 - alpha / 2)
  rep(f, h)
}

tsb_fc <- function(y, h, a = 0.1, b = 0.1) {
  nz <- which(y > 0)
  if (length(nz) == 0) return(rep(0, h))
  z <- y[nz[1]]; p <- 1
  for (t in seq_along(y)) {
    if (y[t] > 0) { z <- z + a * (y[t] - z); p <- p + b * (1 - p) } else { p <- p + b * (0 - p) }
  }
  rep(p * z, h)
}

rows <- list(); times <- c()
for (m in models) {
  start <- Sys.time()
  for (oi in seq_len(nrow(origins))) {
    o <- origins$origin[oi]; n <- origins$train_days[oi]; h <- origins$horizon[oi]
    for (id in ids) {
      y <- byid[[id]][1:n]
      first <- which(y > 0)[1]
      if (is.na(first)) first <- n
      y <- y[first:n]
      q <- matrix(NA_real_, h, length(levels))
      if (m == "ets") {
        fit <- ets(ts(y, frequency = 7))
        fc <- forecast(fit, h = h, level = ivl)
        q <- fromIntervals(fc); mean <- pmax(as.numeric(fc$mean), 0)
      } else if (m == "arima") {
        fit <- auto.arima(ts(y, frequency = 7))
        fc <- forecast(fit, h = h, level = ivl)
        q <- fromIntervals(fc); mean <- pmax(as.numeric(fc$mean), 0)
      } else if (m == "croston") {
        mean <- croston_fc(y, h)
      } else if (m == "sba") {
        mean <- croston_fc(y, h, type = "sba")
      } else if (m == "tsb") {
        mean <- tsb_fc(y, h)
      } else if (m == "prophet") {
        suppressPackageStartupMessages(library(prophet))
        if (length(y) < 2) {
          mean <- rep(mean(y), h) # Prophet needs two days: a series first sold on the last day
        } else {
          df <- data.frame(ds = as.Date(dates[[id]][first:n]), y = y)
          fit <- suppressMessages(prophet(df, yearly.seasonality = TRUE, weekly.seasonality = TRUE, daily.seasonality = FALSE, uncertainty.samples = 0))
          fut <- make_future_dataframe(fit, periods = h, include_history = FALSE)
          mean <- pmax(predict(fit, fut)$yhat, 0)
        }
      } else stop(paste("unknown model", m))
      qdf <- as.data.frame(matrix(as.numeric(q), nrow = h))
      names(qdf) <- qnames
      rows[[length(rows) + 1]] <- cbind(data.frame(model = paste0("R_", m), origin = o, id = id, h = seq_len(h), mean = mean), qdf)
    }
  }
  times[paste0("R_", m)] <- as.numeric(difftime(Sys.time(), start, units = "secs"))
  message(sprintf("R %s: %.1f s", m, times[paste0("R_", m)]))
}
res <- do.call(rbind, rows)
write.csv(res, out, row.names = FALSE, quote = FALSE, na = "NA")
write.csv(data.frame(model = names(times), seconds = times), sub("\\.csv$", ".times.csv", out), row.names = FALSE, quote = FALSE)
