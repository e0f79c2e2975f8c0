// The issue page: live timeline, SMS segment count, View Customer, comments.
