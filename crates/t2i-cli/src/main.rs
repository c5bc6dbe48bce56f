fn main(){ println!("{}", t2i::hello()); }
