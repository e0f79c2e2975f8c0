// The Issue Tracker list: live rows, Load more, keyboard moves.
